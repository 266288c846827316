"""`python -m ingest rebuild`: recompute Redis's hot state from the durable store.

For when Redis is lost or its aggregates are in doubt; safe with the API serving. The
rebuild fences writes (they answer 503 "being rebuilt", not recorded) for as long as it
recomputes the aggregates, and the fence ends with it, or FENCE_TTL_MS after it crashed.
Sources: og.events plus the stream entries not yet in it. Rebuilt: every partition's
stats hash (written only while the fence still holds) and the uuid filter. Conversation
keys are not restored: a followup or a repeated uuid whose key is gone is judged from
og.events (server/redis_interface.py), and each such request puts its key back.
"""
import threading
import time
import uuid as uuid_module
from collections import defaultdict

from sqlalchemy import case, func, select, tuple_

from core import keys, seen, timestamps
from core.event_store import events
from core.store.codec import MalformedEntry, Rows, SymbolStats

FENCE_TTL_MS = 10_000
"""A crashed rebuild fences writes for at most this long; a live one extends its fence
every third of it."""
CHUNK = 1000


def _from_database(connection, stats, partitions):
    """Add og.events into stats[partition][symbol], each event under the partition of the
    stream it came from (modulo a changed partition count)."""
    initial = events.c.kind == "initial"
    query = select(
        events.c.stream, events.c.symbol, events.c.guess,
        func.sum(case((initial, 1), else_=0)), func.sum(case((initial, 0), else_=1)),
        func.min(case((initial, events.c.ts))), func.max(case((initial, events.c.ts))),
    ).group_by(events.c.stream, events.c.symbol, events.c.guess)
    for stream, symbol, guess, n, f, first, last in connection.execute(query):
        g = "1" if guess else "0"
        found = SymbolStats(**{"n" + g: int(n), "f" + g: int(f)},
                            first=timestamps.to_micros(first) if first else None,
                            last=timestamps.to_micros(last) if last else None)
        per_symbol = stats[stream % partitions]
        per_symbol[symbol] = per_symbol[symbol].merge(found)


def _stream_entries(store, partitions):
    """Every well-formed entry (partition, id, fields) in the streams now.

    Read before og.events is: an entry trimmed from a stream was committed before, so it
    is in og.events' snapshot, taken after. Malformed entries are skipped: the API never
    wrote (or counted) them, and the worker dead-letters them.
    """
    rows, found = Rows(), []
    for partition in range(partitions):
        for entry_id, fields in store.stream_entries(partition, CHUNK):
            try:
                rows.row(partition, entry_id, fields)
            except MalformedEntry:
                continue
            found.append((partition, entry_id, fields))
    return found


def _not_stored(connection, entries):
    """The entries og.events (this transaction's snapshot of it) does not hold."""
    missing = []
    for at in range(0, len(entries), CHUNK):
        chunk = entries[at:at + CHUNK]
        stored = set(connection.execute(
            select(events.c.stream, events.c.event_id).where(
                tuple_(events.c.stream, events.c.event_id).in_([(p, i) for p, i, _ in chunk]))))
        missing += [entry for entry in chunk if (entry[0], entry[1]) not in stored]
    return missing


class RebuildRefused(Exception):
    """Rebuilding now would lose events; str() says what to do first."""


class FenceLost(Exception):
    """The fence expired or was taken while rebuilding: writes may have come between."""


class Fence:
    """Writes to every partition refused (core/store/lua/initial.lua and followup.lua answer 'fenced') while held.

    Held with a token and a time to live that a thread keeps extending, so the fence ends
    when the rebuild ends, and FENCE_TTL_MS after a rebuild that died.
    """

    def __init__(self, store, partitions, ttl_ms=FENCE_TTL_MS):
        self.store = store
        self.partitions = partitions
        self.ttl_ms = ttl_ms
        self.token = uuid_module.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="rebuild-fence", daemon=True)

    def _each(self, op):
        return self.store.fence(op, self.token, self.ttl_ms, self.partitions)

    def __enter__(self):
        held = self._each("hold")
        if not all(held):
            self._each("release")
            raise RebuildRefused("another `ingest rebuild` holds the fence (it ends with that "
                                 f"rebuild, or {self.ttl_ms / 1000:.0f} s after it died); retry then")
        self._keeper.start()
        return self

    def _keep(self):
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not all(self._each("extend")):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - retried at the next tick; the TTL bounds it
                pass

    def swap(self, partition, aside, live, also=None):
        """fenced_write.lua: `aside` replaces `live` (and `also` = (key, value) is set),
        only while this rebuild still holds the fence; FenceLost otherwise."""
        if self.lost or not self.store.swap(partition, self.token, aside, live, also):
            raise FenceLost("the rebuild's fence expired before it finished (Redis "
                            "unreachable for a while?): writes may have come between, so "
                            "nothing more was written; run `python -m ingest rebuild` again")

    def __exit__(self, *exc):
        self._stop.set()
        if self._keeper.is_alive():
            self._keeper.join()
        self._each("release")


def _previous_layout(store, partitions):
    """The partition count the store was made with, if it differs from `partitions`; a
    change is allowed only once every old stream is drained (its entries would
    otherwise sit in streams that no worker with the new count reads)."""
    old = store.recorded_layout()
    if old is None or old == partitions:
        return None
    waiting = {keys.stream(p): n for p, n in enumerate(store.stream_lengths(old)) if n}
    if waiting:
        raise RebuildRefused(
            f"the store has OG_STREAM_PARTITIONS={old}; changing it to {partitions} needs every "
            f"stream drained first, but these hold entries: {waiting}. Stop the API, run the "
            f"worker with OG_STREAM_PARTITIONS={old} until `python -m ingest status` shows them "
            "empty, then rebuild again")
    return old


def rebuild(store, engine, partitions, fence_ttl_ms=FENCE_TTL_MS, uuid_filter_mb=0,
            resize_filter=False):
    """Recompute Redis's hot state from og.events (and undrained stream entries), with
    writes fenced meanwhile; also the way to change OG_STREAM_PARTITIONS on a drained
    store."""
    previous = _previous_layout(store, partitions)
    bits, resize = _filter_size(store, partitions, previous, uuid_filter_mb, resize_filter)
    # A filter only gains bits, so one kept at its size is refilled before the fence,
    # writes going on: what they add sets its own bits. A new size, or a new partition
    # count, moves every uuid's bits: that one is replaced under the fence.
    phases = {"uuid_filter_s": 0.0}
    if bits and not resize:
        began = time.monotonic()
        _fill_filter(store, engine, partitions, bits, fence=None)
        phases["uuid_filter_s"] = round(time.monotonic() - began, 3)
    with Fence(store, max(partitions, previous or 0), fence_ttl_ms) as fence:
        fenced_at = time.monotonic()
        if _previous_layout(store, partitions) != previous:  # appended meanwhile
            raise RebuildRefused("the store's partition count changed while the rebuild "
                                 "started; run it again")
        summary = _rebuild_fenced(store, engine, partitions, previous, fence)
        if resize:
            began = time.monotonic()
            _fill_filter(store, engine, partitions, bits, fence, previous)
            phases["uuid_filter_s"] = round(time.monotonic() - began, 3)
    summary["fenced_s"] = round(time.monotonic() - fenced_at, 3)  # writes got 503 this long
    summary["phases"] = {**phases, "fenced_s": summary["fenced_s"]}
    summary["uuid_filter_bits"] = bits
    summary["uuid_filter_resized"] = resize
    return summary


def _filter_size(store, partitions, previous, uuid_filter_mb, resize_filter):
    """(bits per partition, resize?): the size the store recorded, unless there is none,
    the partition count changes, or a resize to OG_UUID_FILTER_MB is asked for. A rebuild
    run with another setting than the API's must not change the store's filter by
    accident (and fence writes for a whole refill)."""
    wanted = seen.bits_per_partition(uuid_filter_mb, partitions)
    if previous is not None:
        return wanted, True
    recorded = set(store.filter_sizes(partitions))
    if recorded == {None}:  # a store no process has recorded a size for (or one emptied)
        store.record_filter_size(wanted)
        recorded = set(store.filter_sizes(partitions))
    if resize_filter or len(recorded) != 1 or None in recorded:
        return wanted, recorded != {str(wanted)}
    return int(recorded.pop()), False


def _started_uuids(store, engine, partitions):
    """(partition, uuid) of every conversation started, in a stream or og.events; the
    rows are streamed, never all held."""
    for partition, _, fields in _stream_entries(store, partitions):
        if fields["kind"] == "initial":
            yield partition, fields["uuid"]
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=10_000).execute(
            select(events.c.uuid).where(events.c.kind == "initial"))
        for (uuid,) in rows:
            yield keys.partition_of(uuid, partitions), uuid


def _fill_filter(store, engine, partitions, bits, fence, previous=None):
    filters = {p: seen.empty(bits) for p in range(partitions)} if bits else {}
    if bits:
        for partition, uuid in _started_uuids(store, engine, partitions):
            seen.add(filters[partition], uuid, bits)
    for partition in range(max(partitions, previous or 0)):
        aside = store.filter_aside(partition, filters.pop(partition, None))
        if fence is None:
            store.merge_filter(partition, aside)
        else:
            fence.swap(partition, aside, keys.seen(partition), (keys.seen_bits(partition), bits))


def _rebuild_fenced(store, engine, partitions, previous, fence):
    stats = defaultdict(lambda: defaultdict(SymbolStats))
    # No write is accepted any more. The streams are read first, then og.events in one
    # snapshot: each event is in exactly one of (the snapshot, the entries it lacks),
    # whatever the workers commit meanwhile.
    entries = _stream_entries(store, partitions)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        _from_database(connection, stats, partitions)
        undrained = _not_stored(connection, entries)
        connection.rollback()
    for partition, _, fields in undrained:
        per_symbol = stats[partition]
        per_symbol[fields["symbol"]] = per_symbol[fields["symbol"]].count(
            fields["kind"], fields["guess"] == "1", int(fields["ts"]))

    # Each partition's hash is built aside and swapped in under the fence; partitions
    # that no longer exist are emptied the same way.
    for partition in range(max(partitions, previous or 0)):
        aside = store.stats_aside(partition, stats.get(partition, {}))
        fence.swap(partition, aside, keys.stats(partition))
    # Every partition, old ones too: an API process still on the old count is refused
    # by its scripts ('layout') instead of writing where no worker reads.
    store.set_layout(partitions, max(partitions, previous or 0))
    totals = [entry for symbols in stats.values() for entry in symbols.values()]
    return {"symbols": len({s for symbols in stats.values() for s in symbols}),
            "partitions": partitions, "previous_partitions": previous,
            "undrained_events": len(undrained),
            "conversations": sum(e.conversations for e in totals),
            "followups": sum(e.followups for e in totals)}
