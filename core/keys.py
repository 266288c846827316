"""The Redis key layout, shared by the API and the ingest worker.

Every key a script touches carries the hash tag of one stream partition, `{p}`, so a
script runs on one Redis Cluster slot. A conversation lives in the partition chosen by
its uuid, which is also where its followup lands:

    og:{p}:events      stream of accepted events (consumer group GROUP)
    og:{p}:conv:<uuid> conversation state, "<state><symbol><guess><ts>", EX = the window
                       (state '-' open, '+' followed up; ts = epoch microseconds)
    og:{p}:stats       hash of the per-symbol aggregates of this partition:
                       <s>:n1 <s>:n0  conversations guessed vowel / consonant
                       <s>:f1 <s>:f0  of those, the ones that followed up
                       <s>:first <s>:last  earliest / latest /initial (epoch µs)
    og:{p}:dead        dead-letter stream: entries the worker could not write
    og:{p}:undrained   entries appended but not yet acknowledged by the ingest group
                       (lag + pending): the scripts add, the worker's acks subtract
    og:{p}:stored      the newest entry id the ingest group acknowledged (so in og.events):
                       after Redis went back in time, og.events rows past it that the
                       stream lacks are what Redis lost (the worker replays them)
    og:{p}:seen        Bloom filter of every uuid that started a conversation (core/seen.py)
    og:{p}:seen:bits   its size in bits, which every API process follows (0: off)
    og:{p}:fence       present while `ingest rebuild` runs: writes answer 503 (PX-bounded,
                       so a crashed rebuild cannot fence writes for longer than that)
    og:{p}:layout      the partition count the store was made with (OG_STREAM_PARTITIONS),
                       in every partition: each write checks it (a process with another
                       count gets 503 instead of writing to streams no worker reads)

A symbol's totals are the sums over partitions (min/max for first/last).
"""
from redis.crc import key_slot

PREFIX = "og"
GROUP = "ingest"
"""The consumer group the ingest workers share."""


def partition_of(uuid: str, partitions: int) -> int:
    # uuid4 is random in its first 32 bits, so this spreads conversations evenly.
    return int(uuid[:8], 16) % partitions


def stream(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:events"


def conversation(partition: int, uuid: str) -> str:
    return f"{PREFIX}:{{{partition}}}:conv:{uuid}"


def stats(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:stats"


def dead_letters(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:dead"


def undrained(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:undrained"


def stored(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:stored"


def seen(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:seen"


def seen_bits(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:seen:bits"


def fence(partition: int) -> str:
    return f"{PREFIX}:{{{partition}}}:fence"


def followup_keys(partition: int, uuid: str):
    """KEYS of core/store/lua/followup.lua for one conversation."""
    return (conversation(partition, uuid), stream(partition), stats(partition),
            undrained(partition), fence(partition), layout(partition))


def initial_keys(partition: int, uuid: str):
    """KEYS of core/store/lua/initial.lua for one conversation."""
    return (conversation(partition, uuid), stream(partition), stats(partition),
            undrained(partition), fence(partition), seen(partition), seen_bits(partition),
            layout(partition))


def slot(key: str) -> int:
    """The Redis Cluster hash slot of a key (its hash tag's)."""
    return key_slot(key.encode())


def layout(partition: int = 0) -> str:
    """The store's partition count, as recorded in `partition` (partition 0's is the
    one a process reads at start)."""
    return f"{PREFIX}:{{{partition}}}:layout"


def layout_mismatch(ours: int, recorded: int) -> str:
    """Why an API process or worker with another partition count must not run: its
    conversations would land in other partitions than their followups, and its events
    in streams no worker reads."""
    return (f"OG_STREAM_PARTITIONS={ours}, but this Redis holds a store made with "
            f"OG_STREAM_PARTITIONS={recorded}: every API process and worker must use "
            f"{recorded}. To change it, stop the API, let `python -m ingest status` show "
            f"nothing undrained, then run `python -m ingest rebuild` with the new value")


