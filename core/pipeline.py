"""How far behind the drain is, per stream partition: read by `python -m ingest status`,
the worker's metrics and the API's health route alike.

The figures, and where each comes from:

- `length`: XLEN of the stream (entries not yet trimmed, acknowledged or not).
- `pending`: entries delivered to a worker and not yet acknowledged (XPENDING's
  summary: exact).
- `undrained`: entries appended and not yet acknowledged by the group, i.e. still to be
  written to MariaDB. It is the counter og:{p}:undrained (the API's scripts add to it
  with each XADD, the worker's acks subtract what XACK really acknowledged, and each
  trim trues it up), kept between the two bounds Redis can prove: at least `pending`,
  at most `length` (an unacknowledged entry is never trimmed). Without a group every
  entry in the stream is undrained: a new group starts from the stream's beginning.
  `undrained_counter` is the counter as stored.
- `lag`: undrained - pending, the entries no worker has been given yet. Not Redis's
  XINFO GROUPS `lag`: Redis 7.0 loses it (nil) after a restart from the AOF, and has
  been seen stuck at tens of thousands on an empty stream.
- `oldest_pending_id` / `oldest_pending_age_s`: the oldest entry delivered and not yet
  acknowledged, and its age from its append (Redis's clock, so no clock skew).
- `consumers`: how many consumers the group lists; `consumer_details`: each with what
  it holds pending and for how long it has been idle (ms).
- `dead_letters`: entries in the dead-letter stream.

All of one partition's figures are read in one atomic script (core/store/lua/snapshot.lua:
one round trip, the partition's keys share a hash tag), so they agree with each other
even under load.

Entries appended by other means than the API's scripts (a hand-made XADD, benchmark
preloads) are not in the counter until the worker's next trim, which runs after every
batch and sets the counter to what is really left when nothing is pending: while no
worker runs they show in `length` only.
"""
from core import keys


def collect(store, partitions=None):
    """Each partition's figures (see above), from one snapshot.lua per partition."""
    partitions = store.partitions if partitions is None else partitions
    return [partition_report(partition, reply)
            for partition, reply in enumerate(store.drain_figures(partitions))]


def health(store):
    """The pipeline as a whole: collect()'s figures summed, and how far /dashboard/range
    lags the writes (the age of the oldest event still in a stream; 0: none waits)."""
    report = collect(store)
    now_ms = store.time_ms()  # entry ids are Redis's clock: ages are taken on the same
    oldest = [ms for ms in (_oldest_undrained_ms(store, item) for item in report) if ms]
    return {
        "partitions": len(report),
        "backlog": sum(item["undrained"] for item in report),
        "lag": sum(item["lag"] for item in report),
        "pending": sum(item["pending"] for item in report),
        "dead_letters": sum(item["dead_letters"] for item in report),
        "consumers": max((item["consumers"] for item in report), default=0),
        "range_behind_s": round(max(0, now_ms - min(oldest)) / 1000, 3) if oldest else 0.0,
        "streams": report,
    }


def _oldest_undrained_ms(store, item):
    """Epoch ms of the oldest event of one partition not yet in MariaDB, or None."""
    times = []
    if item["oldest_pending_id"]:
        times.append(entry_ms(item["oldest_pending_id"]))
    if item["length"] and (not item["group"] or item["lag"] != 0):
        delivered = item["last_delivered_id"]
        after = f"({delivered}" if item["group"] and delivered else "-"
        first = store.first_entry_id(item["partition"], after)
        times += [entry_ms(first)] if first else []
    return min(times) if times else None


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def partition_report(partition, reply):
    """One partition's figures from snapshot.lua's reply (core/store/lua/snapshot.lua)."""
    stream = keys.stream(partition)
    length, counter, dead = int(reply[0]), int(reply[1]), int(reply[2])
    now_ms = int(reply[3]) * 1000 + int(reply[4]) // 1000
    has_group = bool(int(reply[5]))
    last_delivered, pending, oldest, details = None, 0, None, []
    if has_group:
        last_delivered, pending = _text(reply[6]), int(reply[7])
        oldest = _text(reply[8]) or None if pending else None
        flat = reply[9]
        details = [{"name": _text(flat[i]), "pending": int(flat[i + 1]), "idle_ms": int(flat[i + 2])}
                   for i in range(0, len(flat), 3)]
        undrained = min(length, max(counter, pending))
    else:
        undrained = length
    return {
        "stream": stream,
        "partition": partition,
        "length": length,
        "group": has_group,
        "undrained": undrained,
        "undrained_counter": counter,
        "lag": undrained - pending,
        "pending": pending,
        "consumers": len(details),
        "consumer_details": details,
        "last_delivered_id": last_delivered,
        "oldest_pending_id": oldest,
        "oldest_pending_age_s": max(0, now_ms - entry_ms(oldest)) / 1000 if oldest else None,
        "dead_letters": dead,
    }


def entry_ms(entry_id):
    """The append time (epoch ms, Redis's clock) of a stream entry id."""
    return int(entry_id.split("-")[0])


def render(report):
    lines = []
    for item in report:
        lines.append(item["stream"])
        for key, value in item.items():
            if key == "consumer_details":
                for consumer in value:
                    lines.append(f"    {consumer['name']:<20} pending {consumer['pending']}, "
                                 f"idle {consumer['idle_ms'] / 1000:.1f} s")
            elif key != "stream":
                lines.append(f"  {key:<22} {value}")
    return "\n".join(lines)
