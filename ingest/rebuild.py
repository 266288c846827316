"""`python -m ingest rebuild`: recompute Redis's hot state from the durable store.

For when Redis is lost or its aggregates are in doubt. Sources: og.events, plus the
stream entries not yet drained (if the stream survived). Rebuilt: every partition's
stats hash (swapped in atomically by RENAME) and the conversation keys still inside the
followup window. Run it with the API stopped: requests accepted during a rebuild may be
missing from the swapped-in aggregates.
"""
from collections import defaultdict

from sqlalchemy import case, func, select, tuple_

from ingest.entries import MalformedEntry, Rows
from core import keys, timestamps
from core.event_store import events

CHUNK = 1000


def _blank():
    return {"n1": 0, "n0": 0, "f1": 0, "f0": 0, "first": None, "last": None}


def _add(stats, symbol, guess, kind, ts):
    entry = stats[symbol]
    g = "1" if guess else "0"
    if kind == "followup":
        entry["f" + g] += 1
        return
    entry["n" + g] += 1
    entry["first"] = ts if entry["first"] is None else min(entry["first"], ts)
    entry["last"] = ts if entry["last"] is None else max(entry["last"], ts)


def _from_database(connection, stats):
    initial = events.c.kind == "initial"
    query = select(
        events.c.symbol, events.c.guess,
        func.sum(case((initial, 1), else_=0)), func.sum(case((initial, 0), else_=1)),
        func.min(case((initial, events.c.ts))), func.max(case((initial, events.c.ts))),
    ).group_by(events.c.symbol, events.c.guess)
    for symbol, guess, n, f, first, last in connection.execute(query):
        entry, g = stats[symbol], "1" if guess else "0"
        entry["n" + g] += int(n)
        entry["f" + g] += int(f)
        for bound, pick in ((first, min), (last, max)):
            if bound is not None:
                micros = timestamps.to_micros(bound)
                field = "first" if pick is min else "last"
                entry[field] = micros if entry[field] is None else pick(entry[field], micros)


def _undrained(redis_client, connection, partitions):
    """Well-formed stream entries (partition, id, fields) that og.events does not hold yet.

    Malformed entries are skipped: the API never wrote (or counted) them, and the
    worker dead-letters them.
    """
    rows, found = Rows(), []
    for partition in range(partitions):
        start = "-"
        while True:
            batch = redis_client.xrange(keys.stream(partition), min=start, max="+", count=CHUNK)
            if not batch:
                break
            ids = [entry_id for entry_id, _ in batch]
            stored = {row.event_id for row in connection.execute(
                select(events.c.event_id).where(
                    tuple_(events.c.stream, events.c.event_id).in_([(partition, i) for i in ids])))}
            for entry_id, fields in batch:
                if entry_id in stored:
                    continue
                try:
                    rows.row(partition, entry_id, fields)
                except MalformedEntry:
                    continue
                found.append((partition, entry_id, fields))
            start = "(" + ids[-1]
    return found


def _conversations(connection, cutoff):
    followed = func.max(case((events.c.kind == "followup", 1), else_=0))
    query = (select(events.c.uuid, events.c.symbol, events.c.guess,
                    func.min(events.c.conversation_ts), followed)
             .where(events.c.conversation_ts >= cutoff)
             .group_by(events.c.uuid, events.c.symbol, events.c.guess))
    return {uuid: [symbol, guess, timestamps.to_micros(cts), bool(f)]
            for uuid, symbol, guess, cts, f in connection.execute(query)}


class RebuildRefused(Exception):
    """Rebuilding now would lose events; str() says what to do first."""


def _previous_layout(redis_client, partitions):
    """The partition count the store was made with, if it differs from `partitions`; a
    change is allowed only once every old stream is drained (its entries would
    otherwise sit in streams that no worker with the new count reads)."""
    recorded = redis_client.get(keys.layout())
    if recorded is None or int(recorded) == partitions:
        return None
    old = int(recorded)
    waiting = {keys.stream(p): redis_client.xlen(keys.stream(p)) for p in range(old)}
    waiting = {stream: n for stream, n in waiting.items() if n}
    if waiting:
        raise RebuildRefused(
            f"the store has OG_STREAM_PARTITIONS={old}; changing it to {partitions} needs every "
            f"stream drained first, but these hold entries: {waiting}. Stop the API, run the "
            f"worker with OG_STREAM_PARTITIONS={old} until `python -m ingest status` shows them "
            "empty, then rebuild again")
    return old


def rebuild(redis_client, engine, partitions, conversation_ttl):
    """Recompute Redis's hot state from og.events (and undrained stream entries); also
    the way to change OG_STREAM_PARTITIONS on a drained store."""
    previous = _previous_layout(redis_client, partitions)
    seconds, micros = redis_client.time()
    now = seconds * 1_000_000 + micros
    cutoff_micros = now - conversation_ttl * 1_000_000
    stats = defaultdict(_blank)
    with engine.connect() as connection:
        _from_database(connection, stats)
        undrained = _undrained(redis_client, connection, partitions)
        conversations = _conversations(
            connection, timestamps.parse_micros(cutoff_micros)) if conversation_ttl > 0 else {}
    for _, _, fields in undrained:
        ts, cts = int(fields["ts"]), int(fields["cts"])
        _add(stats, fields["symbol"], fields["guess"] == "1", fields["kind"], ts)
        if cts >= cutoff_micros:
            known = conversations.setdefault(fields["uuid"], [fields["symbol"], fields["guess"] == "1", cts, False])
            known[3] = known[3] or fields["kind"] == "followup"

    # All totals go to partition 0's hash (dashboards sum over partitions); the others
    # are cleared. Each hash is built aside and renamed over the live one.
    for partition in range(partitions, previous or 0):  # partitions that no longer exist
        redis_client.delete(keys.stats(partition))
    for partition in range(partitions):
        live, aside = keys.stats(partition), keys.stats(partition) + ":rebuild"
        # Plain commands, not a MULTI: RENAME is the atomic step (the aside key is ours
        # alone), and redis-py refuses RENAME in a cluster pipeline.
        redis_client.delete(aside)
        mapping = {}
        if partition == 0:
            for symbol, entry in stats.items():
                for name, value in entry.items():
                    if value is not None:
                        mapping[f"{symbol}:{name}"] = value
        if mapping:
            redis_client.hset(aside, mapping=mapping)
            redis_client.rename(aside, live)
        else:
            redis_client.delete(live)

    pipe = redis_client.pipeline(transaction=False)
    for count, (uuid, (symbol, guess, cts, followed)) in enumerate(conversations.items(), 1):
        remaining_s = conversation_ttl - (now - cts) // 1_000_000
        if remaining_s > 0:
            value = ("+" if followed else "-") + symbol + ("1" if guess else "0") + str(cts)
            pipe.set(keys.conversation(keys.partition_of(uuid, partitions), uuid), value, ex=remaining_s)
        if count % CHUNK == 0:
            pipe.execute()
    pipe.execute()
    redis_client.set(keys.layout(), partitions)
    return {"symbols": len(stats), "partitions": partitions, "previous_partitions": previous, "undrained_events": len(undrained),
            "conversations_restored": len(conversations),
            "conversations": sum(e["n1"] + e["n0"] for e in stats.values()),
            "followups": sum(e["f1"] + e["f0"] for e in stats.values())}
