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

All of one partition's figures are read in one atomic script (one round trip, the
partition's keys share a hash tag), so they agree with each other even under load.

Entries appended by other means than the API's scripts (a hand-made XADD, benchmark
preloads) are not in the counter until the worker's next trim, which runs after every
batch and sets the counter to what is really left when nothing is pending: while no
worker runs they show in `length` only.
"""
from core import keys

SNAPSHOT = """
-- One partition's figures in one atomic step, so they agree with each other under load.
-- KEYS[1] stream  KEYS[2] undrained counter  KEYS[3] dead-letter stream  ARGV[1] group
local length = redis.call('XLEN', KEYS[1])
local counter = redis.call('GET', KEYS[2]) or '0'
local dead = redis.call('XLEN', KEYS[3])
local now = redis.call('TIME')
local group = false
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then group = info end
  end
end
if not group then
  return {length, counter, dead, now[1], now[2], 0}
end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
local consumers = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  consumers[#consumers + 1] = info['name']
  consumers[#consumers + 1] = info['pending']
  consumers[#consumers + 1] = info['idle']
end
return {length, counter, dead, now[1], now[2], 1, group['last-delivered-id'], summary[1],
        summary[2] or '', consumers}
"""


def collect(redis_client, partitions):
    snapshot = redis_client.register_script(SNAPSHOT)
    return [partition_report(snapshot, partition) for partition in range(partitions)]


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def partition_report(snapshot, partition):
    stream = keys.stream(partition)
    reply = snapshot(keys=[stream, keys.undrained(partition), keys.dead_letters(partition)],
                     args=[keys.GROUP])
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


def stream_group_info(redis_client, stream):
    """The XINFO GROUPS entry of the ingest group, or {} when it does not exist."""
    for group in redis_client.xinfo_groups(stream):
        if group["name"] == keys.GROUP:
            return group
    return {}
