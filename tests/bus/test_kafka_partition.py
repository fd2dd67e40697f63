"""The producer's murmur2 partitioner agrees with aiokafka's (and so with Kafka's Java client)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner, murmur2

from callscope.bus.kafka.partition import murmur2 as fast_murmur2
from callscope.bus.kafka.partition import partition_for


def test_murmur2_matches_aiokafka_for_every_length_and_tail() -> None:
    rng = random.Random(20261126)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"\xff\xff\xff\xff\xff", b"bench-1-000000001@10.1.0.1"]
    keys += [rng.randbytes(rng.randrange(0, 120)) for _ in range(20_000)]
    for key in keys:
        assert fast_murmur2(key) == murmur2(key), key


def test_partition_for_matches_the_default_partitioner() -> None:
    rng = random.Random(7)
    partitioner = DefaultPartitioner()
    for count in (1, 3, 12, 100):
        for _ in range(2000):
            key = f"{rng.getrandbits(64):x}@10.0.0.{rng.randrange(256)}".encode()
            assert partition_for(key, count) == partitioner(key, list(range(count)), [])
