"""Configuration, read from the environment in one place.

Every setting has a working default; the README lists them all.
"""
import os

DEFAULT_BACKEND = "redis"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "mysql+pymysql://og:og@127.0.0.1:3306/og"
DEFAULT_SQLITE_PATH = "var/og.sqlite3"
DEFAULT_EPSILON = 0.1
"""Probability that the model explores (gives the other guess)."""
DEFAULT_STREAM_PARTITIONS = 1
"""Stream partitions; each is one hash tag, so one Redis Cluster slot."""
DEFAULT_CONVERSATION_TTL = 3600
"""Seconds a conversation is remembered in Redis for its followup and its uuid's 409.
Measured ~190 bytes of Redis memory per conversation: an hour at 1,000 new
conversations/s holds ~0.7 GB (see discussion.txt)."""
DEFAULT_BACKLOG_HIGH_WATER = 1_000_000
"""Stream entries per partition above which the API sheds writes with 503."""
DEFAULT_REDIS_TIMEOUT = 1.0
"""Seconds a Redis call may take before the API answers 503."""
DEFAULT_DATABASE_TIMEOUT = 2.0
"""Seconds each MariaDB step of /dashboard/range (connect, ping, query) may take."""


def _int(name, default):
    return int(os.environ.get(name, default))


def _float(name, default):
    return float(os.environ.get(name, default))


def get_backend():
    return os.environ.get("OG_BACKEND", DEFAULT_BACKEND)


def get_redis_url():
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


def get_database_url():
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def get_sqlite_path():
    return os.environ.get("OG_SQLITE_PATH", DEFAULT_SQLITE_PATH)


def get_seed():
    seed = os.environ.get("OG_SEED")
    return int(seed) if seed not in (None, "") else None


def get_epsilon():
    return _float("OG_EPSILON", DEFAULT_EPSILON)


def get_stream_partitions():
    return _int("OG_STREAM_PARTITIONS", DEFAULT_STREAM_PARTITIONS)


def get_conversation_ttl():
    return _int("OG_CONVERSATION_TTL", DEFAULT_CONVERSATION_TTL)


def get_backlog_high_water():
    return _int("OG_BACKLOG_HIGH_WATER", DEFAULT_BACKLOG_HIGH_WATER)


def get_redis_timeout():
    return _float("OG_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT)


def get_database_timeout():
    return _float("OG_DATABASE_TIMEOUT", DEFAULT_DATABASE_TIMEOUT)


# The ingest worker (python -m ingest).
DEFAULT_INGEST_BATCH_SIZE = 1000
"""Flush after this many events (MariaDB takes ~100k rows/s in 1000-row inserts here)."""
DEFAULT_INGEST_BATCH_MS = 50
"""...or this long after the batch's first event, whichever comes first."""
DEFAULT_INGEST_CLAIM_IDLE_MS = 30_000
"""Entries pending this long (their consumer died or failed) are reclaimed."""
DEFAULT_INGEST_MAX_DELIVERIES = 5
"""Deliveries after which an entry the database rejects goes to the dead-letter stream."""
DEFAULT_INGEST_METRICS_PORT = 9108
"""Loopback port of the worker's Prometheus metrics; 0 turns them off."""


def get_ingest_batch_size():
    return _int("OG_INGEST_BATCH_SIZE", DEFAULT_INGEST_BATCH_SIZE)


def get_ingest_batch_ms():
    return _int("OG_INGEST_BATCH_MS", DEFAULT_INGEST_BATCH_MS)


def get_ingest_claim_idle_ms():
    return _int("OG_INGEST_CLAIM_IDLE_MS", DEFAULT_INGEST_CLAIM_IDLE_MS)


def get_ingest_max_deliveries():
    return _int("OG_INGEST_MAX_DELIVERIES", DEFAULT_INGEST_MAX_DELIVERIES)


def get_ingest_metrics_port():
    return _int("OG_INGEST_METRICS_PORT", DEFAULT_INGEST_METRICS_PORT)


def get_ingest_consumer():
    """This worker's name in the consumer group; unique per process by default."""
    import socket

    return os.environ.get("OG_INGEST_CONSUMER") or f"{socket.gethostname()}-{os.getpid()}"
