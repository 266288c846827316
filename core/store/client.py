"""The one Redis client of the API, the worker, the rebuild and status: one plain Redis
or a Redis Cluster, found from one URL.

`is_cluster(url)` asks the node: REDIS_URL may name a plain Redis or any node of a
cluster, and nothing else needs to say which. CoalescingClient sends the calls of
concurrent callers in shared pipelines, one per node per batch, routed by hash slot.

Every state Redis can be in is classified here, once:
- not run: MOVED and ASK (sent again where the slot is), NOSCRIPT (script loaded on that
  node, sent again), TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY (a demoted master),
  LOADING (slot map read again, a short pause, sent again). Still so after
  MAX_REDIRECTS rounds, or refused for good (OOM, MISCONF, NOREPLICAS, BUSY, no node
  reachable): NotRecorded. The caller may retry; the API answers 503 "not recorded".
- outcome unknown: a timeout or lost connection after sending, a WAIT that came back
  short (NotReplicated) or failed because the node was demoted meanwhile:
  OutcomeUnknown. Never sent a second time; the API answers 503 "outcome unknown".
- anything else (WRONGTYPE, NOGROUP, a bug) is the command's own reply, raised as is.
Every connection taken from a pool is given back on every path, error or not.
"""
import hashlib
import threading
import time

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (AskError, BusyLoadingError, ClusterDownError, ConnectionError,
                              MovedError, NoScriptError, OutOfMemoryError, ReadOnlyError,
                              RedisError, ResponseError, TimeoutError, TryAgainError)
from redis.retry import Retry

SLOTS = 16384
MAX_REDIRECTS = 5
"""MOVED/ASK/TRYAGAIN rounds per batch before a call fails: a slot moves at most once or
twice during one reshard step."""
TRYAGAIN_PAUSE_S = 0.02
"""Pause before sending again what a node refused for its state (TRYAGAIN, CLUSTERDOWN,
READONLY, LOADING): a slot map read again, then a few rounds within OG_REDIS_TIMEOUT."""
WRITES = frozenset(("EVALSHA", "EVAL"))
"""Commands that change data: WAIT covers pipelines that hold one."""
NOT_RUN = (TryAgainError, ClusterDownError, ReadOnlyError, BusyLoadingError)
"""States of a node that refuse a command unrun and pass (MasterDownError is a
ClusterDownError): sent again after a pause and a fresh slot map."""
REFUSED = ("NOREPLICAS", "MISCONF", "BUSY ")
"""Error replies (by code) of a node that refuses writes for a while: not run."""
KEY_AT = {"XREADGROUP": None, "XGROUP": 2, "XINFO": 2, "BITOP": 2, "EVALSHA": None, "EVAL": None,
          "TIME": 0, "INFO": 0, "CLUSTER": 0, "SCRIPT": 0, "WAIT": 0, "PING": 0}
"""Where a command's routing key is, when it is not its first argument (0: none, any
node; None: worked out in _route_key)."""
SHORT_OF_REPLICAS_S = 1.0
"""After a node's WAIT came back short, its writes are refused unsent (not recorded) for
this long: one slow WAIT a second per process, instead of one per batch, stalling every
node's pipeline behind it."""


def is_cluster(url, timeout=2.0):
    """True if the node at `url` runs in cluster mode. One attempt: redis-py's default
    (ten retries with backoff) would hold an API request ~11 s on a hung Redis; callers
    retry in their own way (the API answers 503, the worker backs off)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                  retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    finally:
        client.close()


class Unavailable(ConnectionError):
    """A state of Redis, not a bug: the caller backs off (the worker) or answers 503
    (the API). str() says what happened to the call."""


class NotRecorded(Unavailable):
    """Not run: refused before sending, or refused by Redis for its state."""


class OutcomeUnknown(Unavailable):
    """Sent, but no reply came (timeout, lost connection): the call may have run."""


class NotReplicated(OutcomeUnknown):
    """WAIT saw fewer replicas than asked (or failed: the node was demoted): the write
    happened on the master but may be lost in a failover."""


class ClusterDown(NotRecorded):
    """No node could tell where the slot lives (the cluster is failing over, or down)."""


def _address(host, port):
    return (host if isinstance(host, str) else host.decode(), int(port))


class Router:
    """Which node serves a key: the only node of a plain Redis, or the master of the
    key's slot in a cluster (the slot map is read again after MOVED or a lost node).

    `changes` counts the times a slot was seen served by another master than before (a
    failover, a reshard): a master demoted without a single error on this client's
    connections may have answered writes its successor never got (ingest/worker.py)."""

    def __init__(self, url, pool_options, cluster):
        self.url = url
        self.pool_options = pool_options
        self.cluster = cluster
        self._lock = threading.Lock()
        self._pools = {}
        self._slots = None
        self._stale = True
        self.changes = 0
        self.single = redis.ConnectionPool.from_url(url, **pool_options)
        kwargs = self.single.connection_kwargs
        self._seeds = [(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)))]
        # Every node of a cluster is reached with the URL's options (password, timeouts).
        self._max_connections = self.single.max_connections
        self._node_kwargs = {k: v for k, v in kwargs.items() if k not in ("host", "port")}
        if cluster:
            self.single = None

    @classmethod
    def from_pool(cls, pool):
        router = cls.__new__(cls)
        router.cluster, router.single, router._pools = False, pool, {}
        router._lock, router._slots, router._stale = threading.Lock(), None, False
        router.changes = 0
        return router

    def pool(self, address):
        """The pool of the node at `address` (created on first use)."""
        if not self.cluster:
            return self.single
        pool = self._pools.get(address)
        if pool is None:
            with self._lock:
                pool = self._pools.get(address)
                if pool is None:
                    pool = self._pools[address] = redis.ConnectionPool(
                        host=address[0], port=address[1], max_connections=self._max_connections,
                        **self._node_kwargs)
        return pool

    def close(self):
        """Disconnect every pool (the client may be used again: pools reconnect)."""
        for pool in [self.single, *self._pools.values()]:
            if pool is not None:
                pool.disconnect()

    def node_of(self, key):
        """The address of the node for `key` (for None: any master); None on a plain Redis."""
        if not self.cluster:
            return None
        if self._stale or self._slots is None:
            self.refresh()
        if key is None:
            return self._slots[0]
        return self._slots[key_slot(key.encode() if isinstance(key, str) else key)]

    def moved(self, slot, address):
        if self._slots[slot] != address:
            self.changes += 1
        self._slots[slot] = address
        self._stale = True  # one moved slot often means many: read the whole map again

    def lost(self):
        self._stale = True

    def refresh(self):
        """Read CLUSTER SLOTS from the first node that answers (known nodes, then seeds)."""
        candidates = list(dict.fromkeys(
            [*(set(self._slots) if self._slots else ()), *self._seeds, *self._pools]))
        last_error = None
        for address in candidates:
            if address is None:
                continue
            pool = self.pool(address)
            try:
                connection = pool.get_connection()
            except (ConnectionError, TimeoutError, OSError) as error:  # a dead node: next
                last_error = error
                continue
            try:
                connection.send_command("CLUSTER", "SLOTS")
                ranges = connection.read_response()
            except (ConnectionError, TimeoutError, OSError, ResponseError) as error:
                connection.disconnect()
                last_error = error
                continue
            finally:
                pool.release(connection)
            slots = [None] * SLOTS
            for start, end, master, *_replicas in ranges:
                owner = _address(master[0], master[1])
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = owner
            if None in slots:
                last_error = ClusterDown(f"slots not served (from {address[0]}:{address[1]})")
                continue
            if self._slots is not None and slots != self._slots:
                self.changes += 1
            self._slots, self._stale = slots, False
            self._seeds = list(dict.fromkeys([*self._seeds, *set(slots)]))
            return
        raise ClusterDown(f"no cluster node could give the slot map: {last_error}")


def _route_key(command):
    """The key a command is routed by (None: any node will do)."""
    name = command[0].upper() if isinstance(command[0], str) else command[0]
    at = KEY_AT.get(name, 1)
    if at is None:
        if name == "XREADGROUP":  # ... STREAMS key [key ...] id [id ...]
            names = [str(part).upper() for part in command]
            return command[names.index("STREAMS") + 1]
        return command[3] if int(command[2]) > 0 else None  # EVALSHA sha numkeys key...
    return command[at] if 0 < at < len(command) else None


class _Batch:
    __slots__ = ("commands", "replies", "done")

    def __init__(self):
        self.commands = []
        self.replies = None
        self.done = threading.Event()


class CoalescingClient:
    """One pipeline per node for the Redis calls of concurrent requests in a process.

    Under gevent, many requests of one gunicorn worker wait on Redis at once. Their
    calls join the open batch; the first caller of a batch leads it: once the batch
    before it is answered, it closes its batch, sends it (one pipeline per node: one
    write and one read of all replies each) and wakes the rest, each of whom takes its
    own replies. So at most one batch is on the wire per process while the next one
    fills. A lone request pays one round trip; a busy process pays one per batch.

    Plain `threading` primitives: gevent's patching makes them cooperative in gunicorn,
    and they stay correct with real threads (tests, tools). One Event per batch.
    """

    def __init__(self, pool_or_router, scripts=(), wait_replicas=0, wait_timeout_ms=1000):
        """`pool_or_router`: a redis ConnectionPool (one plain Redis) or a Router; the
        socket timeout of its pools bounds every wait here. `scripts`: the Lua texts
        that EVALSHA calls may need loaded again (NOSCRIPT)."""
        self.router = (pool_or_router if isinstance(pool_or_router, Router)
                       else Router.from_pool(pool_or_router))
        self.scripts = {}
        for text in scripts:
            self.add_script(text)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._lock = threading.Lock()
        self._open = _Batch()
        self._in_flight = None
        self._short = {}  # node -> (until, acknowledged) after a short WAIT

    def close(self):
        self.router.close()

    def add_script(self, text):
        sha = hashlib.sha1(text.encode()).hexdigest()
        self.scripts[sha] = text
        return sha

    def execute(self, *command):
        """Run one command; return its reply or raise its error."""
        return self.execute_many([command])[0]

    def execute_many(self, commands, raise_errors=True):
        """Run commands in the shared pipelines; return their replies, raising the first
        error (or, with raise_errors=False, with each error in its command's place)."""
        with self._lock:
            batch = self._open
            start = len(batch.commands)
            batch.commands.extend(commands)
            previous = self._in_flight if start == 0 else None
        if start == 0:
            self._lead(batch, previous)
        else:
            # The leader always sets `done` (its finally), after bounded waits.
            batch.done.wait()
        replies = batch.replies[start:start + len(commands)]
        if raise_errors:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    def _lead(self, batch, previous):
        try:
            if previous is not None:
                previous.done.wait()  # one batch on the wire at a time; ours fills meanwhile
            with self._lock:
                self._open = _Batch()
                self._in_flight = batch
            batch.replies = self._send(batch.commands)
        finally:
            if batch.replies is None:  # interrupted (e.g. the greenlet was killed)
                batch.replies = [_unknown(ConnectionError("pipeline interrupted"))] * len(batch.commands)
            with self._lock:
                if self._open is batch:  # interrupted before closing it
                    self._open = _Batch()
                if self._in_flight is batch:
                    self._in_flight = None
            batch.done.set()

    # -- sending --------------------------------------------------------------------

    def _send(self, commands):
        """Replies (or exceptions) for `commands`, in order: the batch, then the rounds
        that follow redirections for the calls Redis did not run."""
        replies = [None] * len(commands)
        todo = [(index, None, False) for index in range(len(commands))]  # (index, node, asking)
        for _round in range(MAX_REDIRECTS + 1):
            try:
                by_node = self._group(commands, todo)
            except (RedisError, OSError) as error:  # no slot map: nothing was sent
                refused = error if isinstance(error, Unavailable) else NotRecorded(
                    f"no redis node answers ({error}): not recorded; retry")
                for index, _, _ in todo:
                    replies[index] = refused
                return replies
            todo = []
            for node, items, reply_list in self._exchange(commands, by_node):
                for (index, _, asking), reply in zip(items, reply_list):
                    if not isinstance(reply, Exception):  # the common case, first
                        replies[index] = reply
                        continue
                    again = self._redirect(commands[index], reply, node)
                    if again is None:
                        replies[index] = _final(reply)
                    else:
                        todo.append((index, *again))
                        replies[index] = reply
            if not todo:
                return replies
            if any(node == "tryagain" for _, node, _ in todo):
                time.sleep(TRYAGAIN_PAUSE_S)
                todo = [(i, None if n == "tryagain" else n, a) for i, n, a in todo]
        for index, _, _ in todo:
            replies[index] = NotRecorded(
                f"redis refused it for {MAX_REDIRECTS + 1} rounds (last: {replies[index]}; a "
                "failover or a slot migration under way?): not recorded; retry")
        return replies

    def _group(self, commands, todo):
        if not self.router.cluster:  # one node: nothing to route
            return {None: todo}
        by_node = {}
        for index, node, asking in todo:
            if node is None:
                node = self.router.node_of(_route_key(commands[index]))
            by_node.setdefault(node, []).append((index, node, asking))
        return by_node

    def _redirect(self, command, reply, node):
        """(node, asking) to send the call to again, or None if `reply` is final."""
        if not isinstance(reply, (ResponseError, BusyLoadingError)):
            return None
        if isinstance(reply, NoScriptError) and command[0] == "EVALSHA" and command[1] in self.scripts:
            try:
                self._load_script(node, command[1])
            except (RedisError, OSError):  # that node is going away: a fresh map, a pause
                self.router.lost()
                return ("tryagain", False)
            return (node, False)
        if isinstance(reply, MovedError):  # the slot lives elsewhere now: not run
            target = _address(reply.host, reply.port)
            self.router.moved(int(reply.slot_id), target)
            return (target, False)
        if isinstance(reply, AskError):  # the slot is migrating, the key is there: not run
            return (_address(reply.host, reply.port), True)
        if isinstance(reply, NOT_RUN):  # the node's state refused it: not run
            self.router.lost()
            return ("tryagain", False)
        return None

    def _load_script(self, node, sha):
        pool = self.router.pool(node)
        connection = pool.get_connection()
        try:
            connection.send_command("SCRIPT", "LOAD", self.scripts[sha])
            connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _exchange(self, commands, by_node):
        """Send every node its pipeline first, then read each: the nodes work in parallel.
        [(node, items, replies)]; every connection is released, whatever happens."""
        results, sent = [], []
        try:
            for node, items in by_node.items():
                items, refused = self._short_of_replicas(commands, node, items)
                if refused:
                    results.append(refused)
                if items:
                    sent.append(self._send_node(commands, node, items))
        finally:
            for index, exchange in enumerate(sent):
                if exchange.connection is None:
                    results.append((exchange.node, exchange.items, exchange.replies))
                    continue
                try:
                    results.append((exchange.node, exchange.items, self._read(commands, exchange)))
                except BaseException:
                    # Interrupted (a killed greenlet): give back what was not read yet.
                    for rest in sent[index + 1:]:
                        if rest.connection is not None:
                            rest.connection.disconnect()
                            rest.pool.release(rest.connection)
                    raise
        return results

    def _short_of_replicas(self, commands, node, items):
        """(items to send, (node, writes, replies) refused unsent or None): a node whose
        WAIT came back short a moment ago gets no writes for SHORT_OF_REPLICAS_S."""
        if not self._short:
            return items, None
        until, acknowledged = self._short.get(node, (0.0, 0))
        if time.monotonic() >= until:
            return items, None
        writes = [item for item in items if commands[item[0]][0] in WRITES]
        if not writes:
            return items, None
        refusal = NotRecorded(
            f"the Redis node for this key had {acknowledged} of {self.wait_replicas} "
            "replicas (OG_REDIS_WAIT_REPLICAS) a moment ago: not recorded; retry")
        return ([item for item in items if commands[item[0]][0] not in WRITES],
                (node, writes, [refusal] * len(writes)))

    def _send_node(self, commands, node, items):
        """One node's pipeline, written; or its calls' replies if it was not sent."""
        wire = []
        for index, _, asking in items:
            if asking:
                wire.append(("ASKING",))
            wire.append(commands[index])
        waits = self.wait_replicas > 0 and any(commands[i][0] in WRITES for i, _, _ in items)
        if waits:
            wire.append(("WAIT", self.wait_replicas, self.wait_timeout_ms))
        pool = self.router.pool(node)
        try:
            connection = pool.get_connection()
        except (ConnectionError, TimeoutError, OSError) as error:
            self.router.lost()  # nothing was sent: these calls were not run
            return _Exchange(node, items, [NotRecorded(
                f"cannot reach redis ({error}): not recorded; retry")] * len(items))
        try:
            connection.send_packed_command([_pack(wire)], check_health=False)
        except (ConnectionError, TimeoutError, OSError) as error:
            connection.disconnect()
            pool.release(connection)
            self.router.lost()
            return _Exchange(node, items, [_unknown(error)] * len(items))
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        return _Exchange(node, items, None, connection, pool, waits)

    def _read(self, commands, exchange):
        """The replies of one node's pipeline; its connection is released here."""
        connection, pool, items = exchange.connection, exchange.pool, exchange.items
        replies = []
        try:
            for index, _, asking in items:
                if asking:
                    _read_reply(connection)  # ASKING's +OK
                replies.append(_read_reply(connection))
            if exchange.waits:
                replies = self._waited(commands, items, replies, _read_reply(connection),
                                       exchange.node)
        except (ConnectionError, TimeoutError, OSError) as error:
            # The connection state is unknown: drop it. Calls without a reply fail; whether
            # Redis ran them is unknown, so their requests get 503, never a second try.
            connection.disconnect()
            self.router.lost()
            error = _unknown(error)
            replies.extend([error] * (len(items) - len(replies)))
            if exchange.waits:  # the writes' replies came, WAIT's did not
                replies = [error if commands[i][0] in WRITES else r
                           for (i, _, _), r in zip(items, replies)]
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        return replies

    def _waited(self, commands, items, replies, acknowledged, node):
        """The writes' replies after WAIT answered `acknowledged` (a count, or an error:
        the node was demoted to a replica after running them)."""
        if isinstance(acknowledged, Exception):
            self.router.lost()
            short = NotReplicated(
                f"the node that ran the write could not WAIT for replicas ({acknowledged}; "
                "it was demoted meanwhile?): outcome unknown, it may be lost in the failover; "
                "retry (a 409 on retry means it was recorded)")
        elif acknowledged < self.wait_replicas:
            self._short[node] = (time.monotonic() + SHORT_OF_REPLICAS_S, acknowledged)
            short = NotReplicated(
                f"the write reached {acknowledged} of {self.wait_replicas} replicas within "
                f"{self.wait_timeout_ms} ms (OG_REDIS_WAIT_REPLICAS): outcome unknown, "
                "it may be lost in a failover; retry (a 409 on retry means it was recorded)")
        else:
            return replies
        return [short if commands[i][0] in WRITES and not isinstance(r, Exception) else r
                for (i, _, _), r in zip(items, replies)]


class _Exchange:
    """One node's part of a batch: sent on `connection`, or answered already (`replies`)."""
    __slots__ = ("node", "items", "replies", "connection", "pool", "waits")

    def __init__(self, node, items, replies, connection=None, pool=None, waits=False):
        self.node, self.items, self.replies = node, items, replies
        self.connection, self.pool, self.waits = connection, pool, waits


def _pack(commands):
    """The wire form of `commands` (tuples of str, bytes, int or float), packed in C by
    hiredis: redis-py's own packer looks at every argument in Python first (a quarter of
    the client's CPU per call, benchmarks ledger)."""
    pack = hiredis.pack_command
    return b"".join([pack(command if type(command) is tuple else tuple(command))
                     for command in commands])


def _read_reply(connection):
    try:
        return connection.read_response()
    except (ResponseError, BusyLoadingError) as error:  # an error reply; the connection stays usable
        return error


def _final(reply):
    """A reply as the caller gets it: the refusals of a node's state become NotRecorded."""
    if isinstance(reply, OutOfMemoryError):
        return NotRecorded("redis is out of memory (maxmemory): not recorded; writes are "
                           "refused until it recovers, retry later")
    if isinstance(reply, (*NOT_RUN, ResponseError)) and not isinstance(reply, Unavailable) and (
            isinstance(reply, NOT_RUN) or str(reply).startswith(REFUSED)):
        return NotRecorded(f"redis refuses it for now ({reply}): not recorded; retry")
    return reply


def _unknown(error):
    return OutcomeUnknown(f"{error}; outcome unknown: the call may have run. Retry (for a "
                          "write, a 409 on the retry means it was recorded)")
