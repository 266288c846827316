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

Entries appended by other means than the API's scripts (a hand-made XADD, benchmark
preloads) are not in the counter until the worker's next trim, which runs after every
batch and sets the counter to what is really left when nothing is pending: while no
worker runs they show in `length` only.
"""
from core import keys


def collect(redis_client, partitions):
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    return [partition_report(redis_client, partition, now_ms) for partition in range(partitions)]


def partition_report(redis_client, partition, now_ms):
    stream = keys.stream(partition)
    length = redis_client.xlen(stream)
    group = stream_group_info(redis_client, stream) if length or redis_client.exists(stream) else {}
    counter = int(redis_client.get(keys.undrained(partition)) or 0)
    pending, oldest, details = 0, None, []
    if group:
        summary = redis_client.xpending(stream, keys.GROUP)
        pending = summary["pending"]
        oldest = summary["min"] if pending else None
        details = [{"name": c["name"], "pending": c["pending"], "idle_ms": c["idle"]}
                   for c in redis_client.xinfo_consumers(stream, keys.GROUP)]
        undrained = min(length, max(counter, pending))
    else:
        undrained = length
    return {
        "stream": stream,
        "length": length,
        "group": bool(group),
        "undrained": undrained,
        "undrained_counter": counter,
        "lag": undrained - pending,
        "pending": pending,
        "consumers": len(details),
        "consumer_details": details,
        "last_delivered_id": group.get("last-delivered-id"),
        "oldest_pending_id": oldest,
        "oldest_pending_age_s": max(0, now_ms - entry_ms(oldest)) / 1000 if oldest else None,
        "dead_letters": redis_client.xlen(keys.dead_letters(partition)),
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


def stream_group_info(redis_client, stream):
    """The XINFO GROUPS entry of the ingest group, or {} when it does not exist."""
    for group in redis_client.xinfo_groups(stream):
        if group["name"] == keys.GROUP:
            return group
    return {}
