"""The filter of every uuid that ever started a conversation: a Bloom filter per stream
partition (og:{p}:seen), so a uuid reused after its window is caught without a
MariaDB read on every /initial.

core/store/lua/initial.lua sets and tests the same bits; this module is their Python twin,
used by `ingest rebuild` to refill the filter from og.events. A "seen" answer may be
false (a false positive); the API then asks og.events, which decides.
"""
import hashlib

HASHES = 4
"""Bits per uuid; discussion.txt gives the false-positive rate by size and conversations."""
HEX_PER_HASH = 8
"""Each position is 8 hex digits (32 bits) of the uuid's SHA-1, modulo the filter's bits."""
MAX_BITS = 1 << 32
"""A Redis string holds at most 512 MiB: 2^32 bits."""


def bits_per_partition(filter_mb, partitions):
    """The filter's size in bits in each partition; 0 when it is off."""
    return min(MAX_BITS, filter_mb * 8 * 1024 * 1024 // partitions)


def positions(uuid, bits):
    digest = hashlib.sha1(uuid.encode()).hexdigest()
    return [int(digest[i * HEX_PER_HASH:(i + 1) * HEX_PER_HASH], 16) % bits
            for i in range(HASHES)]


def empty(bits):
    """A filter of `bits` bits, as the bytes of a Redis string (bit 0 is the most
    significant bit of byte 0, as SETBIT counts)."""
    return bytearray((bits + 7) // 8)


def add(data, uuid, bits):
    for position in positions(uuid, bits):
        data[position >> 3] |= 0x80 >> (position & 7)


def bitmap(uuids, bits):
    """The filter holding `uuids`."""
    data = empty(bits)
    for uuid in uuids:
        add(data, uuid, bits)
    return bytes(data)
