"""``POST /api/v1/ingest``: envelopes over HTTP onto the bus (admin scope).

The body is newline-delimited JSON (``application/x-ndjson``), one envelope per
line, read as a stream: lines are decoded and validated one by one
(:func:`schemas.envelope.validate` on the parsed JSON, which is what
:func:`schemas.envelope.decode` does) and published in bounded batches, so a
large body never sits in memory whole; blank lines are skipped and not counted.
A JSON array (or a single object) as ``application/json`` is accepted too; it is
parsed whole, still bounded by ``api.ingest_max_bytes``, and an invalid element
is dead-lettered as its re-encoded JSON.

Valid envelopes go to ``topic_for(kind)`` keyed by their correlation key, in the
canonical encoding (:func:`schemas.envelope.encode`). Invalid lines go to
``callscope.deadletter`` with a bounded reason and the raw bytes; nothing is
dropped silently. The answer is sent after the producer flushed, so a 200 means
the bus holds every line.

A body over ``api.ingest_max_bytes`` is refused with 413: up front when
Content-Length says so (nothing is read or published), otherwise as soon as the
streamed count passes the limit. In the streamed case the complete lines before
that point are published and the 413 answer says how many
(``detail.published``); envelopes carry stable ids, so resending overlapping
requests deduplicates downstream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from api.auth import AdminPrincipal, context_of
from api.context import ApiContext
from callscope.bus.base import Producer
from schemas.envelope import KINDS, encode, validate
from schemas.errors import EnvelopeError, TransientError
from schemas.topics import DEADLETTER, deadletter_record, topic_for

COMPONENT = "ingest"
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
JSON_TYPE = "application/json"
BATCH_MAX_MESSAGES = 500
BATCH_MAX_BYTES = 1024 * 1024

router = APIRouter(tags=["ingest"])  # mounted under /api/v1


class IngestResult(BaseModel):
    accepted: int
    deadlettered: int
    lines: int


class _TooLargeError(Exception):
    """The streamed body passed the limit."""


class _Publisher:
    """Validates lines and publishes them in bounded per-topic batches.

    ``accepted`` and ``deadlettered`` count what the producer took, not what is
    still pending in the current batch.
    """

    def __init__(self, ctx: ApiContext, producer: Producer) -> None:
        self.ctx = ctx
        self.producer = producer
        self.node = ctx.settings.node
        self.accepted = 0
        self.deadlettered = 0
        self._pending: dict[str, list[tuple[bytes | None, bytes]]] = {}
        self._pending_bytes = 0
        self._pending_messages = 0
        t = ctx.telemetry
        self._received = {kind: t.events_received.labels(component=COMPONENT, kind=kind) for kind in KINDS}
        self._received_invalid = t.events_received.labels(component=COMPONENT, kind="invalid")
        self._sent = {topic_for(kind): t.events_sent.labels(component=COMPONENT, kind=kind) for kind in KINDS}

    async def line(self, raw: bytes) -> None:
        """Handle one line (surrounding whitespace already stripped, not empty)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            await self._deadletter(raw, "not_json", f"not JSON: {exc}")
            return
        await self.item(data, raw)

    async def item(self, data: Any, raw: bytes) -> None:
        """Handle one parsed JSON value; ``raw`` goes to the dead-letter topic if it is invalid."""
        try:
            env = validate(data)
        except EnvelopeError as exc:
            if not isinstance(data, dict):
                reason = "not_object"
            elif data.get("kind") not in KINDS:
                reason = "unknown_kind"
            else:
                reason = "invalid_envelope"
            await self._deadletter(raw, reason, str(exc))
            return
        self._received[env.kind].inc()
        await self._add(topic_for(env.kind), env.key.encode("utf-8") or None, encode(env))

    async def _deadletter(self, raw: bytes, reason: str, detail: str) -> None:
        self._received_invalid.inc()
        self.ctx.telemetry.deadletters.labels(component=COMPONENT, reason=reason).inc()
        record = deadletter_record(component=COMPONENT, reason=reason, detail=detail, raw=raw, node=self.node)
        await self._add(DEADLETTER, None, record)

    async def _add(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._pending.setdefault(topic, []).append((key, value))
        self._pending_messages += 1
        self._pending_bytes += len(value)
        if self._pending_messages >= BATCH_MAX_MESSAGES or self._pending_bytes >= BATCH_MAX_BYTES:
            await self.publish()

    async def publish(self) -> None:
        """Hand the pending batch to the producer, topic by topic (order kept within a topic)."""
        pending, self._pending = self._pending, {}
        self._pending_messages = self._pending_bytes = 0
        for topic, items in pending.items():
            await self.producer.send_many(topic, items)
            if topic == DEADLETTER:
                self.deadlettered += len(items)
            else:
                self.accepted += len(items)
                self._sent[topic].inc(len(items))

    async def finish(self) -> IngestResult:
        """Publish what is pending and wait until the bus holds it."""
        await self.publish()
        await self.producer.flush()
        return IngestResult(
            accepted=self.accepted, deadlettered=self.deadlettered, lines=self.accepted + self.deadlettered
        )


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise _TooLargeError
        yield chunk


async def _ndjson(chunks: AsyncIterator[bytes], publisher: _Publisher) -> None:
    buffer = bytearray()
    async for chunk in chunks:
        scan_from = len(buffer)  # the carried-over part holds no newline: do not scan it again
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", max(start, scan_from))) >= 0:
            line = bytes(buffer[start:end]).strip()
            start = end + 1
            if line:
                await publisher.line(line)
        del buffer[:start]
    tail = bytes(buffer).strip()
    if tail:
        await publisher.line(tail)


async def _json_array(chunks: AsyncIterator[bytes], publisher: _Publisher) -> None:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    for item in items:
        await publisher.item(item, orjson.dumps(item))


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Content-Length is not a number") from None
    if length < 0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Content-Length is negative")
    return length


def _too_large(limit: int, published: IngestResult | None = None) -> HTTPException:
    detail: dict[str, Any] = {"message": f"request body exceeds api.ingest_max_bytes ({limit} bytes)", "limit": limit}
    if published is not None:
        detail["published"] = published.model_dump()
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail)


_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One envelope per line (NDJSON), or a JSON array of envelopes.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


@router.post(
    "/ingest",
    summary="Publish envelopes to the bus",
    response_model=IngestResult,
    openapi_extra=_REQUEST_BODY,
    responses={
        400: {"description": "Malformed request (bad Content-Length, JSON body that is not JSON)."},
        413: {"description": "Body larger than api.ingest_max_bytes."},
        415: {"description": "Content-Type is neither NDJSON nor JSON."},
        503: {"description": "No producer on this role, or the bus is unavailable."},
    },
)
async def ingest(request: Request, _principal: AdminPrincipal) -> IngestResult:
    ctx = context_of(request)
    if ctx.producer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "ingest is not enabled here (no bus producer)")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in NDJSON_TYPES and content_type != JSON_TYPE:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be application/x-ndjson or application/json, got {content_type or 'none'!r}",
        )
    limit = ctx.settings.api.ingest_max_bytes
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)

    publisher = _Publisher(ctx, ctx.producer)
    try:
        async with aclosing(_limited(request.stream(), limit)) as chunks:
            try:
                if content_type == JSON_TYPE:
                    await _json_array(chunks, publisher)
                else:
                    await _ndjson(chunks, publisher)
            except _TooLargeError:
                # Complete lines before the limit are published, and the answer says how many,
                # so a client can resend the rest (stable ids deduplicate any overlap).
                result = await publisher.finish()
                raise _too_large(limit, result) from None
        return await publisher.finish()
    except TransientError as exc:
        ctx.telemetry.errors.labels(component=COMPONENT, error=type(exc).__name__).inc()
        ctx.telemetry.logger(COMPONENT).warning("bus refused ingest batch", error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the bus is unavailable; retry later", headers={"Retry-After": "5"}
        ) from None
