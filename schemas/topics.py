"""Topic registry and key functions.

Every kind travels on ``callscope.<kind>``; what could not be parsed travels on
``callscope.deadletter`` with the reason and the raw bytes (base64).
"""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.envelope import KINDS

PREFIX = "callscope"
DEADLETTER = f"{PREFIX}.deadletter"


def topic_for(kind: str) -> str:
    """The topic an envelope of ``kind`` is published on."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return f"{PREFIX}.{kind}"


ALL_TOPICS: tuple[str, ...] = (*(topic_for(k) for k in KINDS), DEADLETTER)


def partition_for(key: bytes | None, partitions: int) -> int:
    """Partition of a key: a stable hash of the key (crc32) modulo the partition count.

    The in-process bus uses it; the Kafka producer uses Kafka's own default
    partitioner (murmur2) so other Kafka clients agree. Either way one key stays
    on one partition.
    """
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    if not key:
        return 0
    return zlib.crc32(key) % partitions


def deadletter_record(
    *, component: str, reason: str, detail: str, raw: bytes, node: str, source_topic: str | None = None
) -> bytes:
    """Encode a dead-letter record: why it failed and the raw bytes (base64)."""
    doc: dict[str, Any] = {
        "v": 1,
        "component": component,
        "reason": reason,
        "detail": detail[:2000],
        "node": node,
        "source_topic": source_topic,
        "received": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "raw_b64": base64.b64encode(raw).decode("ascii"),
    }
    return orjson.dumps(doc)
