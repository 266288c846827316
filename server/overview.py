"""GET /dashboard/overview: what the page shows, in one answer: the symbol dashboards of
a-z, the model's accuracy per symbol and the ingest pipeline's health.

The dashboards come from server.app's own data_interface, so they are the API's numbers.
Each API process computes the answer at most once a second; meanwhile every caller gets
the same copy, which is what makes many open pages cheap for the stores.
"""
import json
import logging
import threading
import time
from string import ascii_lowercase

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from core import pipeline, redis_client, timestamps
from server.coalescing import SingleFlight
from server.data_interface import DataError

log = logging.getLogger(__name__)

CACHE_S = 1.0
"""How long one computed answer is served to every caller of a process."""
VOWELS = frozenset("aeiou")
NO_SUCH_TABLE = 1146


class Overview:
    def __init__(self, data_interface, settings, clock=time.monotonic):
        self.data_interface = data_interface
        self.settings = settings
        self.clock = clock
        self._flight = SingleFlight()
        self._cached = None  # (computed at, status, body)
        self._redis = None
        self._redis_lock = threading.Lock()

    def answer(self):
        """(status, body as JSON bytes): 200, or 503 with `error` when a store did not
        answer (the parts that did answer are in the body all the same)."""
        cached = self._cached
        if cached is not None and self.clock() - cached[0] < CACHE_S:
            return cached[1], cached[2]
        return self._flight.run("overview", self._refresh)

    def _refresh(self):
        started = self.clock()
        status, body = self._compute()
        # Encoded once: every caller of the next second gets these bytes as they are.
        self._cached = (started, status, json.dumps(body).encode())
        return self._cached[1], self._cached[2]

    def _compute(self):
        backend = self.settings.backend
        parts = {"symbols": self._symbols}
        if backend == "redis":
            parts.update(pipeline=self._pipeline, store=self._newest_stored)
        # The parts wait on different stores: asked side by side, the answer takes as long
        # as the slowest store's timeout, not their sum.
        results = _run_together(parts, self._deadline_s())
        body = {"generated_at": timestamps.now(), "backend": backend, "cache_s": CACHE_S}
        errors = {name: error for name, (_, error) in results.items() if error}
        symbols, _ = results["symbols"]
        body["symbols"] = symbols["dashboards"] if symbols else None
        body["accuracy"] = symbols["accuracy"] if symbols else None
        if backend == "redis":
            health, _ = results["pipeline"]
            stored, _ = results["store"]
            body["pipeline"] = {"applies": True, **(health or {}), **(stored or {})}
        else:
            body["pipeline"] = {"applies": False, "reason": (
                f"the {backend} backend has no ingest pipeline: its range dashboard reads "
                "the store it writes")}
        if errors:
            body["errors"] = errors
            body["error"] = "; ".join(dict.fromkeys(errors.values()))
            return 503, body
        return 200, body

    def _deadline_s(self):
        # Every call below is bounded by one of these timeouts; this only catches a hang.
        return 2 * max(self.settings.redis_timeout, self.settings.database_timeout) + 1.0

    # --- the parts ---------------------------------------------------------------------

    def _symbols(self):
        # Asked all at once, the 26 reads join one pipeline of the app's coalescing client
        # (one round trip); one after another they would wait for 26 batches of writes.
        dashboards = _map_together(self.data_interface.dashboard_symbol, ascii_lowercase)
        return {"dashboards": dashboards, "accuracy": self._accuracy()}

    def _accuracy(self):
        # The model's own counts (docs/API.md section 4): per symbol, conversations it
        # guessed vowel (n1) or consonant (n0). Only the redis backend keeps them apart
        # from the dashboards; it reads them at most once a second per process.
        stats_of = getattr(self.data_interface, "_model_stats", None)
        if stats_of is None:
            return {"available": False, "reason": (
                f"not available: the {self.settings.backend} backend keeps no count of its guesses")}
        per_symbol, guesses, correct = {}, 0, 0
        for symbol in ascii_lowercase:
            stats = stats_of(symbol)
            n = stats.n_vowel + stats.n_consonant
            right = stats.n_vowel if symbol in VOWELS else stats.n_consonant
            per_symbol[symbol] = {"guesses": n, "correct": right,
                                  "rate": round(right / n, 4) if n else None}
            guesses, correct = guesses + n, correct + right
        return {"available": True, "symbols": per_symbol, "guesses": guesses, "correct": correct,
                "rate": round(correct / guesses, 4) if guesses else None}

    def _pipeline(self):
        client = self._redis_client()
        try:
            report = pipeline.collect(client, self.settings.stream_partitions)
            # Entry ids are Redis's clock: ages are taken on the same clock.
            seconds, micros = client.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            oldest = [ms for ms in (_oldest_undrained_ms(client, item) for item in report) if ms]
        except (RedisError, OSError) as error:
            self._drop_redis_client()
            raise _Failed(f"redis unavailable: {error}") from error
        undrained = [_undrained(item) for item in report]
        lag = [item.get("lag") if item.get("group") else item.get("length") for item in report]
        return {
            "partitions": len(report),
            "backlog": None if None in undrained else sum(undrained),
            "lag": None if None in lag else sum(lag),
            "pending": sum(item.get("pending") or 0 for item in report),
            "dead_letters": sum(item.get("dead_letters") or 0 for item in report),
            "consumers": max((item.get("consumers") or 0 for item in report), default=0),
            # /dashboard/range counts an event once it is in MariaDB: it lags the writes by
            # the age of the oldest event still in a stream (0: nothing is waiting).
            "range_behind_s": round(max(0, now_ms - min(oldest)) / 1000, 3) if oldest else 0.0,
            "streams": report,
        }

    def _newest_stored(self):
        engine = self.data_interface._database()  # the range dashboard's own pool and limits
        try:
            with engine.connect() as connection:
                newest = connection.exec_driver_sql(
                    "SELECT MAX(conversation_ts) FROM events").scalar()
        except ProgrammingError as error:
            if _error_number(error) != NO_SUCH_TABLE:
                raise _Failed(f"event store unavailable: {_reason(error)}") from error
            newest = None  # no worker has stored anything yet
        except SQLAlchemyError as error:
            raise _Failed(f"event store unavailable: {_reason(error)}") from error
        return {"newest_stored": timestamps.format_datetime(newest) if newest else None,
                "newest_stored_age_s": round(time.time() - _epoch(newest), 3) if newest else None}

    # --- the pipeline's own Redis client -------------------------------------------------

    def _redis_client(self):
        with self._redis_lock:
            if self._redis is None:
                self._redis = self._connect()
            return self._redis

    def _drop_redis_client(self):
        with self._redis_lock:
            client, self._redis = self._redis, None
        if client is not None:
            client.close()

    def _connect(self):
        # One attempt per call (redis-py's default retries ten times with backoff): a
        # store that does not answer within OG_REDIS_TIMEOUT makes this a 503 at once.
        timeout = self.settings.redis_timeout
        options = {"decode_responses": True, "socket_timeout": timeout,
                   "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
        probe = redis.Redis.from_url(self.settings.redis_url, **options)
        try:
            cluster = bool(probe.info("cluster").get("cluster_enabled"))
        except (RedisError, OSError) as error:
            probe.close()
            raise _Failed(f"redis unavailable: {error}") from error
        if not cluster:
            return probe
        probe.close()
        try:
            return redis_client.connect(self.settings.redis_url, cluster=True, **options)
        except (RedisError, OSError) as error:
            raise _Failed(f"redis unavailable: {error}") from error


class _Failed(Exception):
    """A part of the overview whose store did not answer; str() is shown on the page."""


def _run_together(parts, deadline_s):
    """{name: (value, error text or None)} for each part, run side by side."""
    results = {name: (None, "timed out") for name in parts}

    def run(name, work):
        try:
            results[name] = (work(), None)
        except (_Failed, DataError) as error:
            results[name] = (None, str(error))
        except Exception as error:  # noqa: BLE001 - a bug: logged, and the page says so
            log.exception("overview: %s failed", name)
            results[name] = (None, f"internal error in {name}: {type(error).__name__}")

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in parts.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + deadline_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(results)


def _map_together(function, items):
    """[function(item) for item in items], the calls made side by side; the first error
    is raised once all have ended (each call is bounded by its store's timeout)."""
    results, errors = [None] * len(items), []

    def call(index, item):
        try:
            results[index] = function(item)
        except Exception as error:  # noqa: BLE001 - re-raised below, in the caller
            errors.append(error)

    threads = [threading.Thread(target=call, args=pair, daemon=True) for pair in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _undrained(item):
    """Events of one partition not yet in MariaDB (None if Redis cannot say)."""
    if item.get("undrained") is not None:
        return item["undrained"]
    if not item.get("group"):
        return item.get("length") or 0  # no worker has read this stream yet
    if item.get("lag") is None:
        return None
    return item["lag"] + (item.get("pending") or 0)


def _oldest_undrained_ms(client, item):
    """Epoch ms of the oldest event of one partition not yet in MariaDB, or None."""
    times = []
    if item.get("oldest_pending_id"):
        times.append(_entry_ms(item["oldest_pending_id"]))
    if not item.get("group") or item.get("lag") != 0:
        delivered = item.get("last_delivered_id")
        start = f"({delivered}" if item.get("group") and delivered else "-"
        entries = client.xrange(item["stream"], min=start, count=1) if item.get("length") else []
        times += [_entry_ms(entry_id) for entry_id, _ in entries]
    return min(times) if times else None


def _entry_ms(entry_id):
    return int(entry_id.split("-")[0])


def _epoch(naive_utc):
    return timestamps.to_micros(naive_utc) / 1e6


def _error_number(error):
    args = getattr(getattr(error, "orig", None), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _reason(error):
    return f"{error.__class__.__name__}: {getattr(error, 'orig', error)}"
