"""Kafka's default key partitioner (murmur2, as the Java client and aiokafka compute it), faster.

aiokafka's ``murmur2`` reads the key a byte at a time in Python: ~5 us for a 35-byte SIP
Call-ID on this machine, once per new key in the producer (a new call). This one reads the
4-byte words with one ``struct`` call and drops the redundant masks: the same hash (checked
against aiokafka's in tests/bus/test_kafka_partition.py), about 2.5 times faster.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka's ``Utils.murmur2`` computes it (unsigned 32 bits)."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    if words:
        for word in struct.unpack_from(f"<{words}I", data):
            k = (word * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        tail = length - extra
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default partitioner for a keyed record)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
