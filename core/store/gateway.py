"""The store gateway: every read and write of the Redis hot tier, as typed methods, for
the API (append, stats), the ingest worker (read, claim, ack, trim, bury), `ingest
rebuild` (fence, swap, refill) and status (drain figures).

All of them go through one client (core/store/client.py), plain Redis or cluster, so
every Redis state is handled one way: a method raises client.Unavailable (NotRecorded,
OutcomeUnknown) for a state Redis recovers from, and ResponseError only for a reply no
retry can change (NOGROUP is the worker's to handle). Key names are core/keys.py's,
value formats core/store/codec.py's, scripts core/store/lua/'s.
"""
from redis.exceptions import RedisError, ResponseError

from core import keys
from core.store.client import CoalescingClient, NotRecorded, Router, is_cluster
from core.store.codec import Conversation, SymbolStats
from core.store.scripts import ALL as SCRIPTS

LOST_CHUNK = 1000
"""Entry ids per lost.lua call (Lua's unpack and one script's run time stay small)."""
MAX_CONNECTIONS = 64
"""Connections per node per client: one batch is on the wire at a time, so a few are
ever in use; the bound only matters if one leaked, which would then be loud."""


class Store:
    def __init__(self, client, partitions, cluster=False):
        self.client = client
        self.partitions = partitions
        self.cluster = cluster

    @classmethod
    def connect(cls, url, partitions, timeout, wait_replicas=0, connect_timeout=None,
                **pool_options):
        """A Store on the Redis (or cluster) at `url`; `timeout` bounds every reply, WAIT
        takes at most half of it. One attempt: NotRecorded if no node answers."""
        connect_timeout = connect_timeout or timeout
        try:
            cluster = is_cluster(url, connect_timeout)
        except (RedisError, OSError) as error:
            raise NotRecorded(f"redis unavailable: {error}") from error
        router = Router(url, {"decode_responses": True, "socket_timeout": timeout,
                              "socket_connect_timeout": connect_timeout,
                              "max_connections": MAX_CONNECTIONS, **pool_options}, cluster)
        # WAIT must end before the socket timeout, or a slow replica would read as a lost
        # connection instead of a clear "not replicated".
        client = CoalescingClient(router, scripts=[s.text for s in SCRIPTS.values()],
                                  wait_replicas=wait_replicas,
                                  wait_timeout_ms=int(timeout * 500))
        return cls(client, partitions, cluster)

    def close(self):
        self.client.close()

    def slot_map_changes(self):
        """How often this store's client saw a slot move to another master (0 on a plain
        Redis): core/store/client.Router.changes."""
        return self.client.router.changes

    def _run(self, name, keys_, args=()):
        return self.client.execute(*SCRIPTS[name].command(keys_, args))

    def _each(self, commands):
        return self.client.execute_many(list(commands))

    def partition_of(self, uuid):
        return keys.partition_of(uuid, self.partitions)

    # -- the store's layout -------------------------------------------------------------

    def record_layout(self, filter_bits=None):
        """Record this process's partition count (and uuid filter size) where none is;
        return the count the store has (partition 0's)."""
        commands = [("SET", keys.layout(p), self.partitions, "NX") for p in range(self.partitions)]
        if filter_bits is not None:
            commands += [("SET", keys.seen_bits(p), filter_bits, "NX") for p in range(self.partitions)]
        *_, recorded = self._each([*commands, ("GET", keys.layout(0))])
        return int(recorded)

    def recorded_layout(self):
        """The partition count the store was made with, or None."""
        recorded = self.client.execute("GET", keys.layout(0))
        return None if recorded is None else int(recorded)

    def set_layout(self, partitions, upto):
        """Record `partitions` in every partition below `upto` (old ones included, so a
        process still on the old count gets 'layout' from its scripts)."""
        self._each(("SET", keys.layout(p), partitions) for p in range(upto))

    # -- the API ------------------------------------------------------------------------

    def append_initial(self, uuid, symbol, guess, ttl, high_water, filter_bits, checked=False):
        """initial.lua: 'ok', 'exists', 'check', 'backlog', 'fenced' or 'layout'."""
        partition = self.partition_of(uuid)
        return self._run("initial", keys.initial_keys(partition, uuid),
                         (uuid, symbol, "1" if guess else "0", ttl, high_water, filter_bits,
                          "1" if checked else "0", self.partitions))

    def append_followup(self, uuid, high_water, ttl, stored=None):
        """followup.lua: 'ok', 'unknown', 'followed', 'backlog', 'fenced' or 'layout';
        `stored` the Conversation og.events holds, for one past its window."""
        partition = self.partition_of(uuid)
        args = (uuid, high_water, ttl, self.partitions)
        if stored is not None:
            args += (stored.encode(),)
        return self._run("followup", keys.followup_keys(partition, uuid), args)

    def symbol_stats(self, symbol):
        """A symbol's SymbolStats over every partition."""
        total = SymbolStats()
        fields = SymbolStats.fields(symbol)
        for values in self._each(("HMGET", keys.stats(p), *fields) for p in range(self.partitions)):
            total = total.merge(SymbolStats.from_values(values))
        return total

    def all_stats(self):
        """{symbol: SymbolStats} over every partition (the model's counts)."""
        totals = {}
        for mapping in self._each(("HGETALL", keys.stats(p)) for p in range(self.partitions)):
            for symbol, stats in SymbolStats.from_hash(mapping or {}).items():
                totals[symbol] = totals.get(symbol, SymbolStats()).merge(stats)
        return totals

    # -- the ingest worker --------------------------------------------------------------

    @property
    def blocking_reads(self):
        """True when one XREADGROUP can wait on every stream: they share a node (plain
        Redis), or there is one. On a cluster, partitions live in different slots."""
        return not self.cluster or self.partitions == 1

    def create_groups(self):
        """The consumer group on every stream, made where missing (from the stream's start)."""
        replies = self.client.execute_many(
            [("XGROUP", "CREATE", keys.stream(p), keys.GROUP, "0", "MKSTREAM")
             for p in range(self.partitions)], raise_errors=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    def read(self, consumer, count, block_ms=None):
        """Up to `count` new entries [(partition, entry_id, fields)] for `consumer`.
        block_ms waits for the first one, when blocking_reads; else each partition's
        stream is read once, without waiting, and gets an equal share of `count` (what is
        read is pending on this consumer and must fit in its batch)."""
        if self.blocking_reads:
            streams = [keys.stream(p) for p in range(self.partitions)]
            block = ("BLOCK", block_ms) if block_ms else ()
            replies = [self.client.execute(
                "XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", count, *block,
                "STREAMS", *streams, *[">"] * len(streams))]
        else:
            share = max(1, count // self.partitions)
            replies = self._each(
                ("XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", share,
                 "STREAMS", keys.stream(p), ">") for p in range(self.partitions))
        return [(_partition_of_stream(stream), entry_id, _fields(flat))
                for reply in replies for stream, messages in _streams(reply)
                for entry_id, flat in messages if flat is not None]

    def claim(self, consumer, idle_ms, count):
        """Entries pending longer than idle_ms on any consumer (a dead worker's, or rows
        the database rejected), now this consumer's: up to `count`."""
        entries = []
        for partition in range(self.partitions):
            start = "0-0"
            while len(entries) < count:
                start, claimed, *_ = self.client.execute(
                    "XAUTOCLAIM", keys.stream(partition), keys.GROUP, consumer, idle_ms, start,
                    "COUNT", count - len(entries))
                entries += [(partition, entry_id, _fields(flat))
                            for entry_id, flat in claimed if flat]
                if start == "0-0":
                    break
        # Once each: a claim has been seen to return an entry twice (under failovers),
        # and a batch must write and acknowledge it once.
        return list({(p, i): (p, i, f) for p, i, f in entries}.values())

    def ack(self, partition, ids):
        """ack.lua: acknowledge written entries and take them off the undrained counter."""
        return self._run("ack", (keys.stream(partition), keys.undrained(partition),
                                 keys.stored(partition)), (keys.GROUP, *ids))

    def trim(self, partitions):
        """trim.lua on each partition: drop what the group acknowledged, true the counter."""
        self._each(SCRIPTS["trim"].command((keys.stream(p), keys.undrained(p)), (keys.GROUP,))
                   for p in partitions)

    def stored_mark(self, partition):
        """The newest entry id the group acknowledged in `partition` (None: none yet)."""
        return self.client.execute("GET", keys.stored(partition))

    def lost(self, partition, events):
        """lost.lua: per StoredEvent of `partition`, 0 Redis has it, 1 or 2 it lost it."""
        codes = []
        for at in range(0, len(events), LOST_CHUNK):
            chunk = events[at:at + LOST_CHUNK]
            codes += self._run("lost", (keys.stream(partition), keys.stored(partition),
                                        *(keys.conversation(partition, e.uuid) for e in chunk)),
                               [f"{e.kind}:{e.event_id}" for e in chunk])
        return codes

    def replay(self, partition, event, ttl_s):
        """replay.lua: give Redis back one event of `partition`'s stream that og.events
        holds and Redis lost (a StoredEvent): 'applied' or 'duplicate'."""
        return self._run("replay", (keys.conversation(partition, event.uuid), keys.stats(partition),
                                    keys.seen(partition), keys.seen_bits(partition),
                                    keys.stored(partition)),
                         (event.kind, event.uuid, event.symbol, "1" if event.guess else "0",
                          event.ts_us, event.conversation_ts_us, ttl_s, event.event_id))

    def bury(self, partition, entry_id, fields, reason):
        """dead_letter.lua: True if the entry was pending and is now in og:{p}:dead."""
        # Back to the bytes as read (the worker's client decodes with surrogateescape):
        # an entry that was not UTF-8 lands in the dead-letter stream unchanged.
        flat = [item.encode("utf-8", "surrogateescape") for pair in fields.items() for item in pair]
        return bool(self._run("dead_letter", (keys.stream(partition), keys.dead_letters(partition),
                                              keys.undrained(partition)),
                              (keys.GROUP, entry_id, reason, *flat)))

    def deliveries(self, partition, entry_id):
        """How many times the entry was delivered (0: no longer pending)."""
        pending = self.client.execute("XPENDING", keys.stream(partition), keys.GROUP,
                                      entry_id, entry_id, 1)
        return pending[0][3] if pending else 0

    def forget_consumers(self, consumer, idle_ms):
        """forget_consumers.lua on every stream: the names of gone consumers removed."""
        removed = self._each(
            SCRIPTS["forget_consumers"].command((keys.stream(p),), (keys.GROUP, idle_ms, consumer))
            for p in range(self.partitions))
        return [name for names in removed for name in names]

    def leave(self, consumer):
        """Deregister `consumer` where it holds nothing; elsewhere its entries stay
        claimable by the others."""
        for partition in range(self.partitions):
            stream = keys.stream(partition)
            if not self.client.execute("XPENDING", stream, keys.GROUP, "-", "+", 1, consumer):
                self.client.execute("XGROUP", "DELCONSUMER", stream, keys.GROUP, consumer)

    # -- status ---------------------------------------------------------------------------

    def drain_figures(self, partitions=None):
        """snapshot.lua of each partition: raw figures, read by core/pipeline.py."""
        partitions = range(self.partitions if partitions is None else partitions)
        return self._each(
            SCRIPTS["snapshot"].command((keys.stream(p), keys.undrained(p), keys.dead_letters(p)),
                                        (keys.GROUP,)) for p in partitions)

    def time_ms(self):
        """Redis's clock (stream entry ids are on it), epoch ms."""
        seconds, micros = self.client.execute("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    def first_entry_id(self, partition, after="-"):
        """The id of the partition's first stream entry after `after` ('(id' or '-')."""
        entries = self.client.execute("XRANGE", keys.stream(partition), after, "+", "COUNT", 1)
        return entries[0][0] if entries else None

    def stream_lengths(self, partitions):
        return self._each(("XLEN", keys.stream(p)) for p in range(partitions))

    # -- ingest rebuild -------------------------------------------------------------------

    def stream_entries(self, partition, chunk):
        """Every entry (entry_id, fields) of a partition's stream now, read in chunks."""
        start = "-"
        while True:
            batch = self.client.execute("XRANGE", keys.stream(partition), start, "+", "COUNT", chunk)
            if not batch:
                return
            for entry_id, flat in batch:
                yield entry_id, _fields(flat or [])
            start = "(" + batch[-1][0]

    def fence(self, op, token, ttl_ms, partitions):
        """fence.lua ('hold', 'extend' or 'release') on every partition: [0/1 each]."""
        return self._each(SCRIPTS["fence"].command((keys.fence(p),), (op, token, ttl_ms))
                          for p in range(partitions))

    def swap(self, partition, token, aside, live, also=None):
        """fenced_write.lua: `aside` replaces `live` (and also=(key, value) is set), only
        while `token` holds the partition's fence. False when it does not."""
        extra_keys, extra_args = ((also[0],), (also[1],)) if also else ((), ())
        return bool(self._run("fenced_write", (keys.fence(partition), aside, live, *extra_keys),
                              (token, *extra_args)))

    def stats_aside(self, partition, per_symbol):
        """Write {symbol: SymbolStats} into the partition's stats key built aside; its name."""
        aside = keys.stats(partition) + ":rebuild"
        mapping = [item for symbol, stats in per_symbol.items()
                   for pair in stats.mapping(symbol).items() for item in pair]
        self._each([("DEL", aside)] + ([("HSET", aside, *mapping)] if mapping else []))
        return aside

    def filter_sizes(self, partitions):
        """The uuid filter size recorded in each partition (None where none is)."""
        return self._each(("GET", keys.seen_bits(p)) for p in range(partitions))

    def record_filter_size(self, bits):
        self._each(("SET", keys.seen_bits(p), bits, "NX") for p in range(self.partitions))

    def filter_aside(self, partition, data):
        """The partition's uuid filter built aside (bytes, or None: none); its name."""
        aside = keys.seen(partition) + ":rebuild"
        self._each([("DEL", aside)] + ([("SET", aside, bytes(data))] if data is not None else []))
        return aside

    def merge_filter(self, partition, aside):
        """OR the filter built aside into the live one (which only gains bits)."""
        live = keys.seen(partition)
        self._each([("BITOP", "OR", live, live, aside), ("DEL", aside)])


def _partition_of_stream(stream):
    return int(stream[stream.index("{") + 1:stream.index("}")])


def _streams(reply):
    """XREADGROUP's answer as (stream, messages) pairs (a map under RESP3, a list under
    RESP2, None when nothing came)."""
    if not reply:
        return []
    return reply.items() if isinstance(reply, dict) else reply


def _fields(flat):
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2]))


