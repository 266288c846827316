"""Redis memory per conversation and per stream entry."""
import logging
import random
import uuid as uuidlib
from string import ascii_lowercase

from benchmarks.report import n
from benchmarks.targets import count_events, reset_store
from core import config, keys
from core.store.gateway import Store
from core.store.scripts import ALL as SCRIPTS

log = logging.getLogger("benchmarks")

PIPELINE = 2000


def _conversations(redis_url, count):
    """`count` conversations through the API's Lua scripts, half followed up; the events."""
    store = Store.connect(redis_url, 1, timeout=10)
    initial, followup = SCRIPTS["initial"], SCRIPTS["followup"]
    ttl, high_water = config.DEFAULT_CONVERSATION_TTL, config.DEFAULT_BACKLOG_HIGH_WATER
    rng = random.Random(5)
    events = 0
    for start in range(0, count, PIPELINE):
        uuids = [str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
                 for _ in range(min(PIPELINE, count - start))]
        # Without the uuid filter: its fixed size (OG_UUID_FILTER_MB) is not per conversation.
        commands = [initial.command(keys.initial_keys(0, uuid),
                                    (uuid, rng.choice(ascii_lowercase), rng.choice("01"), ttl,
                                     high_water, 0, "0", 1)) for uuid in uuids]
        commands += [followup.command(keys.followup_keys(0, uuid), (uuid, high_water, ttl, 1))
                     for uuid in uuids[::2]]
        replies = store.client.execute_many(commands)
        if set(replies) != {"ok"}:
            raise RuntimeError(f"unexpected script replies: {set(replies)}")
        events += len(replies)
    store.close()
    return events


def run(stack, plan):
    reset_store(stack, "redis")
    client, stream = stack.redis().client(), keys.stream(0)

    def used():
        return client.info("memory")["used_memory"]

    try:
        empty = used()
        events = _conversations(stack.redis_url(), plan.memory_conversations)
        with_stream, length = used(), client.xlen(stream)
        sample_key = next(client.scan_iter(match=keys.conversation(0, "*"), count=1000))
        key_usage = client.memory_usage(sample_key, samples=0)
        stream_usage = client.memory_usage(stream, samples=0)
        stack.ingest(stack.env("redis"), "run", "--burst")
        drained, left, stored = used(), client.xlen(stream), count_events(stack)
    finally:
        client.close()
    conversations = plan.memory_conversations
    result = {"conversations": conversations, "events": events, "stream_length": length,
              "used_memory_empty": empty, "used_memory_with_stream": with_stream,
              "used_memory_drained": drained, "stream_length_after_drain": left, "stored": stored,
              "bytes_per_conversation": round((drained - empty) / conversations, 1),
              "bytes_per_stream_entry": round((with_stream - drained) / events, 1),
              "memory_usage_conversation_key": key_usage,
              "memory_usage_stream_per_entry": round(stream_usage / length, 1)}
    log.info("memory: %(bytes_per_conversation).0f B per conversation, %(bytes_per_stream_entry)"
             ".0f B per stream entry (%(events)d events; after the drain: stream "
             "%(stream_length_after_drain)d entries, og.events %(stored)d rows)", result)
    return result


def render(m, table):
    return ["## Redis memory", "",
            f"{m['conversations']:,} conversations through the API's Lua scripts "
            f"({m['events']:,} events), worker stopped; then drained and trimmed.", "",
            *table(("", "bytes"), [
                ("per conversation (used_memory after drain − empty) / conversations",
                 n(m["bytes_per_conversation"])),
                ("per stream entry (used_memory before − after drain) / events",
                 n(m["bytes_per_stream_entry"])),
                ("MEMORY USAGE of one conversation key", n(m["memory_usage_conversation_key"])),
                ("MEMORY USAGE of the stream / entries", n(m["memory_usage_stream_per_entry"]))]),
            "", f"After the drain the stream held {m['stream_length_after_drain']} entries and "
            f"og.events {m['stored']:,} rows."]
