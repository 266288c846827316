"""RedisInterface: the product. Redis is the hot tier, MariaDB the durable raw store.

/initial and /followup are one EVALSHA each (server/lua/), coalesced with the calls of
concurrent requests into one pipeline per worker. /dashboard/symbol reads the Redis
aggregates (exact); /dashboard/range reads the MariaDB range buckets and og.events
edges (core/range_buckets.py), which the ingest worker fills.
"""
import hashlib
import logging
import threading
import time
from pathlib import Path

from redis.exceptions import (ClusterDownError, OutOfMemoryError, ReadOnlyError,
                              RedisError, ResponseError, TryAgainError)
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core import event_store, keys, range_buckets, redis_client, seen, timestamps
from server.coalescing import SingleFlight
from server.data_interface import Conflict, DataInterface, NotFound, Unavailable
from server.model import NO_STATS, GuessStats

LUA = Path(__file__).with_name("lua")
log = logging.getLogger(__name__)
NO_SUCH_TABLE = 1146
POOL_SIZE = 16
"""MariaDB connections per API process for /dashboard/range: a bucket query takes a few
ms, so 16 serve thousands of distinct queries a second; more would only queue in MariaDB."""
STATEMENT_TIMEOUT = 1969
"""MariaDB: query execution was interrupted (max_statement_time exceeded)."""
REFUSALS = (ReadOnlyError, ClusterDownError, TryAgainError)  # MasterDownError included
REFUSAL_CODES = ("NOREPLICAS", "MISCONF", "BUSY")
"""Error replies that are states of Redis (a replica, a failing disk, a busy script...),
as redis-py's exception classes and as the codes it leaves in the message."""
STATS_MAX_AGE_S = 1.0
"""The model may read stats this stale (docs/API.md section 4): one refresh a second per worker."""


class Script:
    """A Lua file, run by EVALSHA and loaded again when Redis answers NOSCRIPT."""

    def __init__(self, name):
        self.text = (LUA / f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def command(self, keys_, args):
        return ("EVALSHA", self.sha, len(keys_), *keys_, *args)


class RedisInterface(DataInterface):
    def __init__(self, policy, redis_url, database_url, partitions=1, conversation_ttl=3600,
                 backlog_high_water=1_000_000, timeout=1.0, database_timeout=2.0,
                 wait_replicas=0, uuid_filter_mb=0):
        self.policy = policy
        self.filter_bits = seen.bits_per_partition(uuid_filter_mb, partitions)
        self.wait_replicas = wait_replicas
        self.redis_url = redis_url
        self.database_url = database_url
        self.partitions = partitions
        self.conversation_ttl = conversation_ttl
        self.backlog_high_water = backlog_high_water
        self.timeout = timeout
        self.database_timeout = database_timeout
        self._initial = Script("initial")
        self._followup = Script("followup")
        self._layout_error = None
        self._connect_failure = (0.0, None)
        self._client = None
        self._engine = None
        self._build_lock = threading.Lock()
        self._range_queries = SingleFlight()
        self._stats = {}
        self._stats_at = None
        self._refreshing = False

    @classmethod
    def from_settings(cls, policy, settings):
        return cls(policy, settings.redis_url, settings.database_url,
                   partitions=settings.stream_partitions,
                   conversation_ttl=settings.conversation_ttl,
                   backlog_high_water=settings.backlog_high_water,
                   timeout=settings.redis_timeout, database_timeout=settings.database_timeout,
                   wait_replicas=settings.redis_wait_replicas,
                   uuid_filter_mb=settings.uuid_filter_mb)

    # Clients are built on first use: in a gunicorn worker that is after the fork and
    # after gevent's patching, so sockets are cooperative and never shared across forks.
    def _redis(self):
        if self._client is None:
            with self._build_lock:
                if self._client is None:
                    # Requests that queued on the lock behind a failed attempt fail at
                    # once instead of each waiting out its own connect timeout.
                    failed_at, reason = self._connect_failure
                    if reason and time.monotonic() - failed_at < self.timeout:
                        raise Unavailable(reason)
                    try:
                        self._client = self._connect()
                    except Unavailable as error:
                        self._connect_failure = (time.monotonic(), str(error))
                        raise
        if self._layout_error:
            raise Unavailable(self._layout_error)
        return self._client

    def _connect(self):
        """The coalescing client on a plain Redis or a cluster (asked of the URL's node),
        once the store's partition count is known to agree with ours."""
        try:
            router = redis_client.Router(
                self.redis_url, {"decode_responses": True, "socket_timeout": self.timeout,
                                 "socket_connect_timeout": self.timeout, "max_connections": 64},
                cluster=redis_client.is_cluster(self.redis_url, self.timeout))
        except (RedisError, OSError) as error:
            raise Unavailable(f"redis unavailable: {error}") from error
        # WAIT must end before the socket timeout, or a slow replica would read as a lost
        # connection instead of a clear "not replicated".
        client = redis_client.CoalescingClient(
            router, scripts=(self._initial.text, self._followup.text),
            wait_replicas=self.wait_replicas, wait_timeout_ms=int(self.timeout * 500))
        try:
            # The uuid filter's size too: the first process records it for the store.
            _, recorded, *_ = client.execute_many(
                [("SET", keys.layout(), self.partitions, "NX"), ("GET", keys.layout())]
                + [("SET", keys.seen_bits(p), self.filter_bits, "NX") for p in range(self.partitions)])
        except (RedisError, OSError) as error:
            raise Unavailable(f"redis unavailable: {error}") from error
        if int(recorded) != self.partitions:
            self._layout_error = keys.layout_mismatch(self.partitions, int(recorded))
            log.error("redis backend: %s", self._layout_error)
        return client

    def _database(self):
        if self._engine is None:
            with self._build_lock:
                if self._engine is None:
                    # Every wait is bounded by database_timeout, the pool's pre-ping
                    # included, so a hung MariaDB gives a 503 in a few seconds. A query
                    # is stopped by MariaDB itself at that limit (max_statement_time),
                    # before the socket's own timeout, so a query the API gives up on
                    # does not go on running in the database, and its connection stays
                    # in the pool instead of being replaced by one more.
                    limit = self.database_timeout
                    connect_args = {
                        "connect_timeout": max(1, round(limit)),
                        "read_timeout": limit + 0.25, "write_timeout": limit + 0.25,
                        "init_command": f"SET SESSION max_statement_time = {limit:.3f}"}
                    if _is_loopback(self.database_url):
                        # PyMySQL tries TLS by default: ~21 ms of CPU per new connection
                        # (an SSL context and the CA store), stalling every request of a
                        # gevent worker; on loopback TLS protects nothing.
                        connect_args["ssl_disabled"] = True
                    # A fixed pool, no overflow: connections are made once and kept, so a
                    # burst of readers does not pay for new ones (benchmark "range").
                    self._engine = event_store.build_engine(
                        self.database_url, pool_size=POOL_SIZE, max_overflow=0,
                        pool_timeout=limit, connect_args=connect_args)
        return self._engine

    def _call(self, commands):
        try:
            return self._redis().execute_many(commands)
        except OutOfMemoryError as error:
            raise Unavailable("redis is out of memory: not recorded; writes are refused until "
                              "it recovers, retry later") from error
        except REFUSALS as error:
            raise Unavailable(f"redis refuses the request ({error}): not recorded; retry") from error
        except ResponseError as error:
            if str(error).startswith(REFUSAL_CODES):
                raise Unavailable(f"redis refuses the request ({error}): not recorded; retry") from error
            raise  # anything else is a bug here, not a state of Redis: a 500
        except (RedisError, OSError) as error:  # connection, timeout, LOADING
            raise Unavailable(f"redis unavailable: {error}") from error

    def _run(self, script, keys_, args):
        # NOSCRIPT (a restarted or failed-over node) is handled in the client, per node.
        return self._call([script.command(keys_, args)])[0]

    def _keys(self, uuid):
        return keys.script_keys(keys.partition_of(uuid, self.partitions), uuid)

    def _initial_keys(self, uuid):
        partition = keys.partition_of(uuid, self.partitions)
        return (*keys.script_keys(partition, uuid), *keys.filter_keys(partition))

    def initial(self, uuid, symbol):
        guess = self.policy.guess(self._model_stats(symbol))
        args = (uuid, symbol, "1" if guess else "0", self.conversation_ttl,
                self.backlog_high_water, self.filter_bits)
        keys_ = self._initial_keys(uuid)
        outcome = self._run(self._initial, keys_, (*args, "0"))
        if outcome == "check":
            # The filter has (probably) seen this uuid before its window: a reuse, or a
            # false positive. og.events decides; only this path reads MariaDB.
            found = self._stored_conversation(uuid)
            if found is not None:
                raise Conflict(f"conversation {uuid} already exists (started "
                               f"{timestamps.format_datetime(found[2])})")
            outcome = self._run(self._initial, keys_, (*args, "1"))
        if outcome == "exists":
            raise Conflict(f"conversation {uuid} already exists")
        self._check_backlog(outcome)
        return guess

    def followup(self, uuid):
        keys_ = self._keys(uuid)
        args = (uuid, self.backlog_high_water, self.conversation_ttl)
        outcome = self._run(self._followup, keys_, args)
        if outcome == "unknown":
            # Not in the window. Only this path reads MariaDB: a conversation of any age
            # is accepted once, under the symbol, guess and time og.events records.
            found = self._stored_conversation(uuid)
            if found is None:
                raise NotFound(f"no conversation {uuid}")
            symbol, guess, started, followed = found
            if followed:
                raise Conflict(f"conversation {uuid} already followed up")
            stored = f"-{symbol}{'1' if guess else '0'}{timestamps.to_micros(started)}"
            outcome = self._run(self._followup, keys_, (*args, stored))
        if outcome == "followed":
            raise Conflict(f"conversation {uuid} already followed up")
        self._check_backlog(outcome)

    def _stored_conversation(self, uuid):
        return self._read_store(lambda connection: event_store.find_conversation(connection, uuid),
                                f"cannot look up uuid {uuid} in the stored conversations; "
                                "not recorded, retry")

    def newest_conversation(self):
        """The newest conversation time in og.events (None before any): how far
        /dashboard/range has come. For the page (server/overview.py)."""
        return self._read_store(event_store.newest_conversation, "cannot read the newest one")

    def guess_stats(self, symbol):
        """The model's counts of `symbol` (docs/API.md section 4), at most a second old."""
        return self._model_stats(symbol)

    def _read_store(self, read, consequence):
        """read(connection) on the range dashboard's pool and limits; None if no worker has
        made og.events yet; Unavailable (with `consequence`) if MariaDB does not answer."""
        try:
            with self._database().connect() as connection:
                return read(connection)
        except ProgrammingError as error:
            if _error_number(error) == NO_SUCH_TABLE:
                return None  # no worker has run yet, so nothing is stored
            raise Unavailable(f"event store unavailable: {consequence} "
                              f"({error.__class__.__name__})") from error
        except PoolTimeout as error:
            raise Unavailable(f"all {POOL_SIZE} MariaDB connections of this API process stayed "
                              f"busy for {self.database_timeout} s: {consequence}") from error
        except SQLAlchemyError as error:
            raise Unavailable(f"event store unavailable: {consequence} "
                              f"({error.__class__.__name__}: {getattr(error, 'orig', error)})") from error

    @staticmethod
    def _check_backlog(outcome):
        if outcome == "fenced":
            raise Unavailable("the Redis aggregates are being rebuilt (`python -m ingest rebuild`): "
                              "not recorded; writes resume when it ends, retry in a few seconds")
        if outcome == "backlog":
            raise Unavailable("event backlog above its high-water mark: not recorded; writes "
                              "are paused until the ingest worker catches up, retry later")

    def _model_stats(self, symbol):
        # Refreshed from Redis at most once a second per worker; concurrent requests use
        # the previous copy meanwhile instead of all refreshing at once.
        now = time.monotonic()
        stale = self._stats_at is None or now - self._stats_at > STATS_MAX_AGE_S
        if stale and (self._stats_at is None or not self._refreshing):
            self._refreshing = True
            try:
                replies = self._call([("HGETALL", keys.stats(p)) for p in range(self.partitions)])
            finally:
                self._refreshing = False
            self._stats = _model_stats_from(replies)
            self._stats_at = now
        return self._stats.get(symbol, NO_STATS)

    def dashboard_symbol(self, symbol):
        fields = keys.stat_fields(symbol)
        replies = self._call([("HMGET", keys.stats(p), *fields) for p in range(self.partitions)])
        count = followups = 0
        firsts, lasts = [], []
        for n1, n0, f1, f0, first, last in replies:
            count += int(n1 or 0) + int(n0 or 0)
            followups += int(f1 or 0) + int(f0 or 0)
            firsts += [first] if first else []
            lasts += [last] if last else []
        return {
            "count": count, "symbol": symbol,
            "earliest": timestamps.format_micros(min(firsts, key=int)) if firsts else None,
            "latest": timestamps.format_micros(max(lasts, key=int)) if lasts else None,
            "followups": followups,
        }

    def dashboard_range(self, lower, upper):
        return self._range_queries.run((lower, upper), lambda: self._query_range(lower, upper))

    def _query_range(self, lower, upper):
        try:
            with self._database().connect() as connection:
                try:
                    return range_buckets.summarize(connection, lower, upper)
                except ProgrammingError as error:
                    if _error_number(error) != NO_SUCH_TABLE:
                        raise
                    connection.rollback()
                    if _has_events(connection):
                        raise range_buckets.NotReady(
                            "the range dashboard's buckets are not built yet: start the ingest "
                            "worker (it builds them) or run `python -m ingest rebuild`") from None
                    return []  # no worker has run yet, so no event has been stored
        except range_buckets.NotReady as error:
            raise Unavailable(str(error)) from error
        except PoolTimeout as error:
            raise Unavailable(f"all {POOL_SIZE} MariaDB connections of this API "
                              f"process stayed busy for {self.database_timeout} s "
                              "(OG_DATABASE_TIMEOUT); retry shortly") from error
        except SQLAlchemyError as error:
            if _error_number(error) == STATEMENT_TIMEOUT:
                raise Unavailable(f"range query stopped after {self.database_timeout} s "
                                  "(OG_DATABASE_TIMEOUT)") from error
            raise Unavailable(f"event store unavailable: {error.__class__.__name__}: "
                              f"{getattr(error, 'orig', error)}") from error


def _error_number(error):
    args = getattr(getattr(error, "orig", None), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _is_loopback(url):
    host = make_url(url).host
    return host in (None, "", "localhost") or host == "::1" or host.startswith("127.")


def _has_events(connection):
    try:
        return connection.exec_driver_sql("SELECT 1 FROM events LIMIT 1").first() is not None
    except ProgrammingError as error:
        if _error_number(error) == NO_SUCH_TABLE:
            return False
        raise


def _model_stats_from(replies):
    """Sum the per-partition stats hashes into a GuessStats per symbol."""
    totals = {}
    for reply in replies:
        for field, value in reply.items():
            symbol, _, name = field.partition(":")
            if name in ("n1", "n0", "f1", "f0"):
                totals.setdefault(symbol, {"n1": 0, "n0": 0, "f1": 0, "f0": 0})[name] += int(value)
    return {symbol: GuessStats(t["n1"], t["n0"], t["f1"], t["f0"]) for symbol, t in totals.items()}
