"""RedisInterface: the product. Redis is the hot tier, MariaDB the durable raw store.

/initial and /followup are one EVALSHA each (core/store/lua/), made through the store
gateway (core/store/gateway.py) and coalesced with the calls of concurrent requests
into one pipeline per node. /dashboard/symbol reads the Redis
aggregates (exact); /dashboard/range reads the MariaDB range buckets and og.events
edges (core/range_buckets.py), which the ingest worker fills.
"""
import logging
import threading
import time

from sqlalchemy.exc import ProgrammingError, SQLAlchemyError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core import event_store, keys, pipeline, range_buckets, seen, timestamps
from core.store import client as store_client
from core.store.codec import Conversation
from core.store.gateway import Store
from server.coalescing import SingleFlight
from server.data_interface import Conflict, DataInterface, NotFound, Unavailable
from server.model import NO_STATS, GuessStats

log = logging.getLogger(__name__)
NO_SUCH_TABLE = 1146
POOL_SIZE = 16
"""MariaDB connections per API process for /dashboard/range: a bucket query takes a few
ms, so 16 serve thousands of distinct queries a second; more would only queue in MariaDB."""
STATEMENT_TIMEOUT = 1969
"""MariaDB: query execution was interrupted (max_statement_time exceeded)."""
STATS_MAX_AGE_S = 1.0
"""The model may read stats this stale (docs/API.md section 4): one refresh a second per worker."""


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
        self._layout_error = None
        self._connect_failure = (0.0, None)
        self._store = None
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
        if self._store is None:
            with self._build_lock:
                if self._store is None:
                    # Requests that queued on the lock behind a failed attempt fail at
                    # once instead of each waiting out its own connect timeout.
                    failed_at, reason = self._connect_failure
                    if reason and time.monotonic() - failed_at < self.timeout:
                        raise Unavailable(reason)
                    try:
                        self._store = self._connect()
                    except Unavailable as error:
                        self._connect_failure = (time.monotonic(), str(error))
                        raise
        if self._layout_error:
            raise Unavailable(self._layout_error)
        return self._store

    def _connect(self):
        """The store gateway on a plain Redis or a cluster (asked of the URL's node), once
        the store's partition count is known to agree with ours."""
        try:
            store = Store.connect(self.redis_url, self.partitions, self.timeout,
                                  wait_replicas=self.wait_replicas)
            # The uuid filter's size too: the first process records it for the store.
            recorded = store.record_layout(self.filter_bits)
        except store_client.Unavailable as error:
            raise Unavailable(f"redis unavailable: {error}") from error
        if recorded != self.partitions:
            self._layout_error = keys.layout_mismatch(self.partitions, recorded)
            log.error("redis backend: %s", self._layout_error)
        return store

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

    def _call(self, method, *args):
        """store.method(*args); a state of Redis becomes Unavailable (503) with the
        client's words: "not recorded" or "outcome unknown". Any other error is a bug: 500."""
        store = self._redis()
        try:
            return getattr(store, method)(*args)
        except store_client.Unavailable as error:
            raise Unavailable(f"redis unavailable: {error}") from error

    def initial(self, uuid, symbol):
        guess = self.policy.guess(self._model_stats(symbol))
        args = (uuid, symbol, guess, self.conversation_ttl, self.backlog_high_water,
                self.filter_bits)
        outcome = self._call("append_initial", *args)
        if outcome == "check":
            # The filter has (probably) seen this uuid before its window: a reuse, or a
            # false positive. og.events decides; only this path reads MariaDB.
            found = self._stored_conversation(uuid)
            if found is not None:
                raise Conflict(f"conversation {uuid} already exists (started "
                               f"{timestamps.format_micros(found.started_us)})")
            outcome = self._call("append_initial", *args, True)
        if outcome == "exists":
            raise Conflict(f"conversation {uuid} already exists")
        self._check_outcome(outcome)
        return guess

    def followup(self, uuid):
        args = (uuid, self.backlog_high_water, self.conversation_ttl)
        outcome = self._call("append_followup", *args)
        if outcome == "unknown":
            # Not in the window. Only this path reads MariaDB: a conversation of any age
            # is accepted once, under the symbol, guess and time og.events records.
            found = self._stored_conversation(uuid)
            if found is None:
                raise NotFound(f"no conversation {uuid}")
            if found.followed:
                raise Conflict(f"conversation {uuid} already followed up")
            outcome = self._call("append_followup", *args, found)
        if outcome == "followed":
            raise Conflict(f"conversation {uuid} already followed up")
        self._check_outcome(outcome)

    def _stored_conversation(self, uuid):
        """The Conversation og.events holds for `uuid`, or None."""
        found = self._read_store(lambda connection: event_store.find_conversation(connection, uuid),
                                 f"cannot look up uuid {uuid} in the stored conversations; "
                                 "not recorded, retry")
        if found is None:
            return None
        symbol, guess, started, followed = found
        return Conversation(followed, symbol, guess, timestamps.to_micros(started))

    def newest_conversation(self):
        """The newest conversation time in og.events (None before any): how far
        /dashboard/range has come. For the page (server/overview.py)."""
        return self._read_store(event_store.newest_conversation, "cannot read the newest one")

    def pipeline_health(self):
        """How far the drain into MariaDB is behind (core/pipeline.health), for the page."""
        try:
            return pipeline.health(self._redis())
        except store_client.Unavailable as error:
            raise Unavailable(f"redis unavailable: {error}") from error

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

    def _check_outcome(self, outcome):
        if outcome == "layout":
            recorded = self._call("recorded_layout")
            raise Unavailable(keys.layout_mismatch(self.partitions, recorded))
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
                totals = self._call("all_stats")
            finally:
                self._refreshing = False
            self._stats = {symbol: GuessStats(s.n1, s.n0, s.f1, s.f0) for symbol, s in totals.items()}
            self._stats_at = now
        return self._stats.get(symbol, NO_STATS)

    def dashboard_symbol(self, symbol):
        stats = self._call("symbol_stats", symbol)
        return {
            "count": stats.conversations, "symbol": symbol,
            "earliest": timestamps.format_micros(stats.first) if stats.first else None,
            "latest": timestamps.format_micros(stats.last) if stats.last else None,
            "followups": stats.followups,
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
