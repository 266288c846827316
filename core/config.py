"""Settings: read from the environment once, checked once, at start.

`load()` returns a frozen Settings or raises SettingsError naming every bad variable,
so `OG_STREAM_PARTITIONS=0` stops the API or the worker at start with a clear message
instead of failing at the first request. Every variable has a working default; the
README lists them all.
"""
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("null", "sqlite", "redis")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

DEFAULT_CONVERSATION_TTL = 3600
"""Seconds a conversation is remembered in Redis for its followup and its uuid's 409.
Measured ~200 bytes of Redis memory per conversation (benchmark "memory")."""
MAX_CONVERSATION_TTL = 365 * 86400
"""A year: Redis refuses an expiry past ~2^63 ms, which a larger window would make every
/initial hit (a 500); conversations older than the window are judged from og.events."""
DEFAULT_BACKLOG_HIGH_WATER = 1_000_000
"""Undrained events (appended, not yet acknowledged) per partition above which the API
sheds writes with 503."""
DEFAULT_INGEST_BATCH_SIZE = 1000
"""Flush after this many events (MariaDB takes ~100k rows/s in 1000-row inserts here)."""


class SettingsError(ValueError):
    """One or more variables are set to values the product cannot run with."""


def _text(value):
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _choice(options):
    def parse(value):
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value
    return parse


def _integer(low, high=None):
    def parse(value):
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if number < low or (high is not None and number > high):
            raise ValueError(f"must be between {low} and {high}" if high is not None
                             else f"must be at least {low}")
        return number
    return parse


def _number(low, high=None, open_low=False):
    def parse(value):
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a number") from None
        too_low = number <= low if open_low else number < low
        if too_low or (high is not None and number > high) or number != number:
            bound = f"above {low}" if open_low else f"at least {low}"
            raise ValueError(f"must be {bound}" + (f" and at most {high}" if high is not None else ""))
        return number
    return parse


def _url(schemes):
    def parse(value):
        scheme = urlsplit(value).scheme
        if not any(scheme == s or scheme.startswith(s + "+") for s in schemes):
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value
    return parse


def _bind(value):
    host, _, port = value.rpartition(":")
    if value.startswith("unix:") or (host and port.isdigit() and 0 < int(port) < 65536):
        return value
    raise ValueError("must be HOST:PORT or unix:PATH")


def _directory(value):
    """'' (off) or a directory path; relative paths are taken from the repository root."""
    if value and (REPO_ROOT / value).exists() and not (REPO_ROOT / value).is_dir():
        raise ValueError("names an existing file, not a directory")
    return value


def _seed(value):
    return None if value == "" else _integer(0)(value)


@dataclass(frozen=True)
class Settings:
    backend: str = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "mysql+pymysql://og:og@127.0.0.1:3306/og"
    sqlite_path: str = "var/og.sqlite3"
    seed: object = None
    """Seed of the model's randomness; None: random."""
    epsilon: float = 0.1
    """Probability that the model explores (gives the other guess)."""
    stream_partitions: int = 1
    """Stream partitions; each is one hash tag, so one Redis Cluster slot."""
    conversation_ttl: int = DEFAULT_CONVERSATION_TTL
    backlog_high_water: int = DEFAULT_BACKLOG_HIGH_WATER
    uuid_filter_mb: int = 32
    """Size of the filter of every uuid ever started (core/seen.py), over all partitions;
    0 accepts a uuid reused after its window as a new conversation."""
    redis_timeout: float = 1.0
    """Seconds a Redis call may take before the API answers 503."""
    redis_wait_replicas: int = 0
    """Replicas that must have a write before it is answered 200 (WAIT after each node's
    pipeline, for at most half of OG_REDIS_TIMEOUT); 0: the master's word is enough."""
    database_timeout: float = 2.0
    """Seconds each MariaDB step of /dashboard/range may take; MariaDB stops the query then."""
    ingest_batch_size: int = DEFAULT_INGEST_BATCH_SIZE
    ingest_batch_ms: int = 50
    """...or this long after the batch's first event, whichever comes first."""
    ingest_claim_idle_ms: int = 30_000
    """Entries pending this long (their consumer died or failed) are reclaimed."""
    ingest_max_deliveries: int = 5
    """Deliveries after which an entry the database rejects goes to the dead-letter stream."""
    ingest_database_timeout: float = 30.0
    """Seconds any MariaDB read or write of a batch may take before the worker counts the
    database away and retries (a stalled server must not hang it, nor a stop)."""
    ingest_metrics_port: int = 9108
    """Loopback port of the worker's Prometheus metrics; 0 turns them off."""
    ingest_consumer: str = ""
    """This worker's name in the consumer group; '' means <hostname>-<pid>."""
    ingest_targets_dir: str = "var/run/prometheus"
    """Where each worker writes its Prometheus file_sd target file (ingest-<port>.json);
    relative to the repository root unless absolute; '' writes none."""
    ingest_consumer_idle_ms: int = 60_000
    """A consumer of the group that holds nothing pending and has been idle this long
    (a dead worker's name) is removed from the group by the running workers."""
    log_level: str = "info"
    bind: str = "127.0.0.1:5000"
    """Where users reach the API: the reverse proxy under `make run`, else gunicorn."""
    gunicorn_bind: str = ""
    """Where gunicorn listens when a proxy is in front (host:port or unix:/path); '':
    gunicorn listens on OG_BIND itself."""
    workers: int = 2
    """gunicorn gevent worker processes: one per core (each is one CPU-bound process)."""
    worker_connections: int = 1000

    @property
    def consumer_name(self):
        return self.ingest_consumer or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def ingest_targets_path(self):
        """OG_INGEST_TARGETS_DIR as an absolute Path (relative: from the repository
        root, wherever the worker is started), or None when it is ''."""
        return REPO_ROOT / self.ingest_targets_dir if self.ingest_targets_dir else None


# variable -> (field, parser). The one table of what the environment may say.
VARIABLES = {
    "OG_BACKEND": ("backend", _choice(BACKENDS)),
    "REDIS_URL": ("redis_url", _url(("redis", "rediss", "unix"))),
    "DATABASE_URL": ("database_url", _url(("mysql", "mariadb"))),
    "OG_SQLITE_PATH": ("sqlite_path", _text),
    "OG_SEED": ("seed", _seed),
    "OG_EPSILON": ("epsilon", _number(0.0, 1.0)),
    "OG_STREAM_PARTITIONS": ("stream_partitions", _integer(1, 16384)),
    "OG_CONVERSATION_TTL": ("conversation_ttl", _integer(1, MAX_CONVERSATION_TTL)),
    "OG_UUID_FILTER_MB": ("uuid_filter_mb", _integer(0, 512)),
    "OG_BACKLOG_HIGH_WATER": ("backlog_high_water", _integer(1)),
    "OG_REDIS_TIMEOUT": ("redis_timeout", _number(0.0, open_low=True)),
    "OG_REDIS_WAIT_REPLICAS": ("redis_wait_replicas", _integer(0, 16)),
    "OG_DATABASE_TIMEOUT": ("database_timeout", _number(0.0, open_low=True)),
    "OG_INGEST_BATCH_SIZE": ("ingest_batch_size", _integer(1, 100_000)),
    "OG_INGEST_BATCH_MS": ("ingest_batch_ms", _integer(0)),
    "OG_INGEST_CLAIM_IDLE_MS": ("ingest_claim_idle_ms", _integer(1)),
    "OG_INGEST_MAX_DELIVERIES": ("ingest_max_deliveries", _integer(1)),
    "OG_INGEST_DATABASE_TIMEOUT": ("ingest_database_timeout", _number(0.0, open_low=True)),
    "OG_INGEST_METRICS_PORT": ("ingest_metrics_port", _integer(0, 65535)),
    "OG_INGEST_CONSUMER": ("ingest_consumer", str),
    "OG_INGEST_TARGETS_DIR": ("ingest_targets_dir", _directory),
    "OG_INGEST_CONSUMER_IDLE_MS": ("ingest_consumer_idle_ms", _integer(1)),
    "OG_LOG_LEVEL": ("log_level", _choice(LOG_LEVELS)),
    "OG_BIND": ("bind", _bind),
    "OG_GUNICORN_BIND": ("gunicorn_bind", lambda value: _bind(value) if value else ""),
    "OG_WORKERS": ("workers", _integer(1, 256)),
    "OG_WORKER_CONNECTIONS": ("worker_connections", _integer(1, 1_000_000)),
}
assert {field for field, _ in VARIABLES.values()} == {f.name for f in fields(Settings)}


def load(environ=None):
    """Settings from the environment (or `environ`); SettingsError lists every bad one."""
    environ = os.environ if environ is None else environ
    values, problems = {}, []
    for name, (field, parse) in VARIABLES.items():
        if name not in environ:
            continue
        raw = environ[name]
        try:
            values[field] = parse(raw)
        except ValueError as error:
            problems.append(f"{name}={raw!r}: {error}")
    if problems:
        raise SettingsError("bad settings: " + "; ".join(problems))
    return Settings(**values)


def get_sqlite_path():
    """For the frozen server/initdb.py, which asks for this one setting."""
    return load().sqlite_path
