"""Shared helpers for the tests of the Redis backend and the ingest worker.

Load that records what the API answered, the ingest worker as a killable process,
bounded drains, and og.events read back as (uuid, kind) events. Every wait here is
bounded; a helper that runs out of time fails the test with the state it saw.
"""
import ctypes
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections import Counter
from pathlib import Path
from string import ascii_lowercase

import sqlalchemy
from redis.exceptions import RedisError, ResponseError

from core import keys
from harness.servers import REPO_ROOT, log_tail

STREAM = keys.stream(0)
STATS = keys.stats(0)
DEAD = keys.dead_letters(0)
DRAIN_TIMEOUT_S = 60.0
"""A drain of a few thousand events takes well under a second; this only catches a hang."""
POLL_S = 0.05
HTTP_TIMEOUT_S = 10.0


def new_uuid():
    return str(uuidlib.uuid4())


# --- HTTP ----------------------------------------------------------------------------


class Http:
    """One keep-alive connection to a loopback server, reopened after an error."""

    def __init__(self, url, timeout=HTTP_TIMEOUT_S):
        host, port = url.removeprefix("http://").split(":")
        assert host == "127.0.0.1", "tests only talk to loopback servers"
        self.host, self.port, self.timeout = host, int(port), timeout
        self.connection = None

    def request(self, method, path, body=None):
        """(status, decoded JSON or None); (None, None) when no answer came."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return None, None
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, None

    def post(self, path, body):
        return self.request("POST", path, body)

    def get(self, path):
        return self.request("GET", path)

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def get_json(url, path):
    http_ = Http(url)
    try:
        return http_.get(path)
    finally:
        http_.close()


# --- load ----------------------------------------------------------------------------


class Load:
    """Threads that start conversations and follow some up, recording every answer.

    `accepted` holds the (uuid, kind) events answered 200. `uncertain` holds those
    answered 503 or not at all: the store may or may not have taken them (a reply lost
    with Redis), so a check that nothing was invented allows them and nothing else.
    Bounded by `conversations` in all and by `seconds`, whichever comes first.
    """

    def __init__(self, url, threads=6, conversations=20_000, seconds=60.0, followup_rate=0.5,
                 symbols=ascii_lowercase, pause_s=0.0, seed=None):
        self.url = url
        self.threads = threads
        self.conversations = conversations
        self.seconds = seconds
        self.followup_rate = followup_rate
        self.symbols = symbols
        self.pause_s = pause_s
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.lock = threading.Lock()
        self.accepted = set()
        self.uncertain = set()
        self.not_recorded = set()  # answered 503 "not recorded": must never be stored
        self.symbol_of = {}
        self.statuses = Counter()
        self.reasons = Counter()  # the error texts of non-200 answers, for failure messages
        self.errors = []
        self._started = 0
        self._stop = threading.Event()
        self._workers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *exc_info):
        if exc_type is None:
            self.stop()
        else:  # the test failed already: only end the load, report nothing of it
            self._stop.set()
            for worker in self._workers:
                worker.join(30)

    def start(self):
        self._deadline = time.monotonic() + self.seconds
        self._workers = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, timeout=30.0):
        self._stop.set()
        self.join(timeout)

    def join(self, timeout=None):
        """Wait for the load to end by itself (its bounds), at most `timeout` s."""
        deadline = time.monotonic() + (self.seconds + 30 if timeout is None else timeout)
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        alive = [w for w in self._workers if w.is_alive()]
        assert not alive, f"{len(alive)} load threads still running"
        assert not self.errors, self.errors[:3]

    def wait_for(self, accepted, timeout=30.0):
        """Block until at least `accepted` events were answered 200 in all."""
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < accepted:
            assert time.monotonic() < deadline, (
                f"only {len(self.snapshot())} of {accepted} events accepted in {timeout} s; "
                f"statuses {dict(self.statuses)}; most common errors {self.reasons.most_common(4)}")
            time.sleep(POLL_S)

    def snapshot(self):
        with self.lock:
            return set(self.accepted)

    def accepted_counts(self):
        """{symbol: (conversations, followups)} over the accepted events."""
        counts = {}
        with self.lock:
            for conversation, kind in self.accepted:
                n, f = counts.get(self.symbol_of[conversation], (0, 0))
                counts[self.symbol_of[conversation]] = (n + (kind == "initial"),
                                                        f + (kind == "followup"))
        return counts

    def _next(self):
        with self.lock:
            if self._started >= self.conversations:
                return False
            self._started += 1
            return True

    def _record(self, event, status, body=None):
        with self.lock:
            self.statuses[status] += 1
            if status != 200:
                self.reasons[str((body or {}).get("error", ""))[:160]] += 1
            if status == 200:
                self.accepted.add(event)
            elif status in (None, 503):
                self.uncertain.add(event)
                if status == 503 and "not recorded" in str((body or {}).get("error", "")):
                    self.not_recorded.add(event)

    def _loop(self, index):
        rng = random.Random(f"{self.seed}:{index}")
        client = Http(self.url)
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline and self._next():
                conversation, symbol = new_uuid(), rng.choice(self.symbols)
                with self.lock:
                    self.symbol_of[conversation] = symbol
                status, body = client.post("/initial", {"uuid": conversation, "symbol": symbol})
                self._record((conversation, "initial"), status, body)
                if status == 200 and body.get("uuid") != conversation:
                    self.errors.append(("bad answer", body))
                if status == 200 and rng.random() < self.followup_rate:
                    status, answer = client.post("/followup", {"uuid": conversation})
                    self._record((conversation, "followup"), status, answer)
                if status != 200:
                    time.sleep(0.01)  # a store outage: do not spin
                elif self.pause_s:
                    time.sleep(self.pause_s)
        except Exception as error:  # noqa: BLE001 - reported by join()
            self.errors.append(repr(error))
        finally:
            client.close()


# --- og.events -----------------------------------------------------------------------


def wait_for(predicate, what, timeout=30.0, interval=0.05):
    """Poll `predicate` until it is true; fail saying `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting {timeout} s for {what}"
        time.sleep(interval)


def stored_events(engine):
    """og.events as a list of (uuid, kind), one item per row."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            sqlalchemy.text("SELECT uuid, kind FROM events"))]


def stored_rows(engine):
    """og.events rows as dicts, ordered by (stream, event_id) numerically."""
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(
            sqlalchemy.text("SELECT * FROM events"))]
    return sorted(rows, key=lambda r: (r["stream"], *map(int, r["event_id"].split("-"))))


def _sample(items, n=5):
    return sorted(items)[:n]


def assert_stored_exactly(engine, accepted):
    """og.events holds each accepted event once, and nothing else."""
    rows = stored_events(engine)
    duplicated = [event for event, n in Counter(rows).items() if n > 1]
    missing, extra = set(accepted) - set(rows), set(rows) - set(accepted)
    assert not duplicated and not missing and not extra, (
        f"{len(rows)} rows for {len(accepted)} accepted events: {len(duplicated)} duplicated "
        f"{_sample(duplicated)}, {len(missing)} missing {_sample(missing)}, "
        f"{len(extra)} never accepted {_sample(extra)}")


def assert_nothing_lost(engine, accepted, uncertain):
    """Every accepted event stored once; anything else stored was at least attempted."""
    rows = stored_events(engine)
    duplicated = [event for event, n in Counter(rows).items() if n > 1]
    missing = set(accepted) - set(rows)
    invented = set(rows) - set(accepted) - set(uncertain)
    assert not duplicated and not missing and not invented, (
        f"{len(rows)} rows for {len(accepted)} accepted events: {len(duplicated)} duplicated "
        f"{_sample(duplicated)}, {len(missing)} missing {_sample(missing)}, "
        f"{len(invented)} never sent {_sample(invented)}")


def stored_counts(engine):
    """{symbol: (conversations, followups)} as counted in og.events."""
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT symbol, SUM(kind = 'initial'), SUM(kind = 'followup') FROM events"
            " GROUP BY symbol"))
        return {symbol: (int(n), int(f)) for symbol, n, f in rows}


# --- Redis state -----------------------------------------------------------------------


def group_state(redis_client, stream=STREAM):
    """(stream length, group lag, group pending) of the ingest group; lag None if no group."""
    try:
        length = redis_client.xlen(stream)
        groups = redis_client.xinfo_groups(stream)
    except ResponseError:  # no such key
        return 0, None, 0
    for group in groups:
        if group["name"] == keys.GROUP:
            return length, group["lag"], group["pending"]
    return length, None, 0


def append_events(redis_client, n, symbols=ascii_lowercase, kind="initial", seed=0):
    """XADD n well-formed events as the API's scripts would (counted in the partition's
    undrained counter too); return [(id, uuid, kind)]."""
    rng = random.Random(seed)
    seconds, micros = redis_client.time()
    now = seconds * 1_000_000 + micros
    pipe = redis_client.pipeline(transaction=False)
    made = []
    for i in range(n):
        conversation, ts = new_uuid(), str(now + i)
        pipe.xadd(STREAM, {"kind": kind, "uuid": conversation, "symbol": rng.choice(symbols),
                           "guess": rng.choice("01"), "ts": ts, "cts": ts})
        made.append((conversation, kind))
    pipe.incrby(keys.undrained(0), n)
    ids = pipe.execute()[:-1]
    return [(entry_id, conversation, k) for entry_id, (conversation, k) in zip(ids, made)]


def symbol_dashboards(get):
    """{symbol: body} of /dashboard/symbol for a-z through `get(path) -> (status, body)`."""
    boards = {}
    for symbol in ascii_lowercase:
        status, body = get(f"/dashboard/symbol/{symbol}")
        assert status == 200, (symbol, status, body)
        boards[symbol] = body
    return boards


# --- the ingest worker ---------------------------------------------------------------


def drain(timeout=DRAIN_TIMEOUT_S):
    """Run an in-process burst worker (configured from the environment) to the end.

    Returns the finished Worker (`.written`, `.dead_lettered`). Its Redis client and
    engine are closed.
    """
    from ingest.__main__ import build_worker

    worker = build_worker()
    failure = []

    def run():
        try:
            worker.run(burst=True)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, name="burst-drain", daemon=True)
    thread.start()
    thread.join(timeout)
    try:
        if thread.is_alive():
            worker.stop()
            thread.join(15)
            raise AssertionError(f"a burst drain did not finish within {timeout} s")
        if failure:
            raise failure[0]
    finally:
        worker.close()
    return worker


def _die_with_pytest():
    # Runs in the child before exec: if pytest dies, the kernel kills the worker too.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


CONFIG_VARS = ("REDIS_URL", "DATABASE_URL")


def process_env(**settings):
    """os.environ without inherited configuration, plus `settings` (str()-ed, None dropped)."""
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith("OG_") or k in CONFIG_VARS)}
    return {**base, "OG_INGEST_METRICS_PORT": "0",
            **{k: str(v) for k, v in settings.items() if v is not None}}


def run_ingest(*args, timeout=60, **settings):
    """`python -m ingest ARGS` to completion; the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=REPO_ROOT,
                          env=process_env(**settings), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ingest_status(**settings):
    """`python -m ingest status --json`, parsed: the report of partition 0."""
    result = run_ingest("status", "--json", **settings)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)[0]


class IngestProcess:
    """`python -m ingest` as a child process that a test can SIGTERM or SIGKILL.

    Each start is a new consumer (OG_INGEST_CONSUMER = name-N), so a killed one leaves
    its pending entries behind for the next to reclaim, as after a real crash.
    """

    _starts = 0

    def __init__(self, log_dir, name="worker", **settings):
        self.log_path = log_dir / f"ingest-{name}.log"
        self.name = name
        # Prometheus target files go to a private directory, never the checkout's var/.
        settings.setdefault("OG_INGEST_TARGETS_DIR", str(log_dir / "prometheus"))
        self.targets_dir = Path(settings["OG_INGEST_TARGETS_DIR"])
        self.settings = settings
        self.process = None
        self.consumer = None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self, redis_client=None, timeout=30.0):
        """Start it; with `redis_client`, return once the consumer group exists (the worker
        creates og.events, then the group, then reads: a group made by the test or an
        earlier worker makes this return at once)."""
        IngestProcess._starts += 1
        self.consumer = f"{self.name}-{IngestProcess._starts}"
        env = process_env(OG_INGEST_CONSUMER=self.consumer, **self.settings)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ingest"], cwd=REPO_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_pytest)
        if redis_client is not None:
            self.wait_until(lambda: group_state(redis_client)[1] is not None, timeout,
                            "create the consumer group")
        return self

    def wait_reading(self, redis_client, timeout=30.0):
        """Until entries have been delivered to this worker (Redis registers a consumer at
        its first delivery): it is past start-up and in its loop."""
        def reading():
            try:
                consumers = redis_client.xinfo_consumers(STREAM, keys.GROUP)
            except ResponseError:
                return False
            return any(c["name"] == self.consumer for c in consumers)

        self.wait_until(reading, timeout, "read from the stream")
        return self

    def wait_until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.running, f"ingest worker exited ({self.process.returncode}) " \
                                 f"before it could {what}:\n{self.log()}"
            assert time.monotonic() < deadline, f"ingest worker did not {what} in {timeout} s:\n{self.log()}"
            time.sleep(POLL_S)

    def kill(self):
        """SIGKILL, waited for: a crash with no chance to ack anything."""
        if self.running:
            self.process.kill()
        return self.process.wait(30)

    def terminate(self, timeout=30.0):
        """SIGTERM (warm stop); its exit status, or a failure if it does not exit in time."""
        if self.running:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            raise AssertionError(f"ingest worker ignored SIGTERM for {timeout} s:\n{self.log()}")

    def log(self):
        return log_tail(self.log_path)


def wait_drained(redis_client, worker=None, timeout=DRAIN_TIMEOUT_S):
    """Poll until the stream is empty with nothing pending and no lag (a running worker's
    drain); fails after `timeout` s, or at once if `worker` (an IngestProcess) died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = group_state(redis_client)
        except RedisError as error:
            state = repr(error)
        if state == (0, 0, 0):
            return
        if worker is not None:
            assert worker.running, f"ingest worker exited ({worker.process.returncode}):\n{worker.log()}"
        assert time.monotonic() < deadline, (
            f"not drained within {timeout} s: (length, lag, pending) = {state}"
            + (f"\n{worker.log()}" if worker else ""))
        time.sleep(POLL_S)


# --- the workers' metrics and their Prometheus target files ---------------------------


def scrape_metrics(port, timeout=5.0):
    """{(sample name, sorted label items): value} of 127.0.0.1:port/metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200, response.status
        text = response.read().decode()
    finally:
        connection.close()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metrics_targets(directory):
    """{port: labels} from the workers' file_sd target files (ingest-<port>.json) in
    `directory`; each file must be whole, valid JSON naming the port of its name."""
    targets = {}
    for path in sorted(Path(directory).glob("ingest-*.json")):
        try:
            entries = json.loads(path.read_text())
        except FileNotFoundError:  # removed meanwhile (a worker's clean exit)
            continue
        assert len(entries) == 1 and len(entries[0]["targets"]) == 1, (path, entries)
        host, _, port = entries[0]["targets"][0].rpartition(":")
        assert host == "127.0.0.1" and path.name == f"ingest-{port}.json", (path, entries)
        targets[int(port)] = entries[0]["labels"]
    return targets


def worker_port(worker, timeout=30.0):
    """The metrics port an IngestProcess took: the target file naming its consumer."""
    found = {}

    def listed():
        found.update({labels["consumer"]: port
                      for port, labels in metrics_targets(worker.targets_dir).items()})
        return worker.consumer in found

    worker.wait_until(listed, timeout, "write its Prometheus target file")
    return found[worker.consumer]
