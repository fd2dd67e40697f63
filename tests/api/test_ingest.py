"""POST /api/v1/ingest: publishing, dead-lettering, size limits, content types, bus failures."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.app import create_app
from api.routes import ingest as ingest_module
from schemas.envelope import encode, validate
from schemas.topics import DEADLETTER, topic_for
from tests.api.conftest import ADMIN_TOKEN, RecordingProducer, bearer, client_for, make_context

URL = "/api/v1/ingest"
NDJSON = {"Content-Type": "application/x-ndjson", **bearer(ADMIN_TOKEN)}
JSON = {"Content-Type": "application/json", **bearer(ADMIN_TOKEN)}


def envelope(kind: str = "options", key: str = "trunk-a", event: str = "e1", **over: Any) -> dict[str, Any]:
    bodies: dict[str, dict[str, Any]] = {
        "options": {"target": key, "status": 200, "rtt_ms": 12.5},
        "cdr": {"uniqueid": "1714557600.1", "linkedid": key, "disposition": "ANSWERED"},
        "queue_log": {"callid": key, "queue": "support", "agent": "NONE", "event": "ENTERQUEUE"},
    }
    doc: dict[str, Any] = {
        "v": 1,
        "kind": kind,
        "id": event,
        "node": "sbc1",
        "role": "sbc",
        "ts": "2024-05-01T10:00:00.123+02:00",
        "received": "2024-05-01T08:00:00.200Z",
        "key": key,
        "body": bodies[kind],
    }
    doc.update(over)
    return doc


def ndjson(*docs: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(doc) + b"\n" for doc in docs)


def deadletters(producer: RecordingProducer) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _, value in producer.on(DEADLETTER)]


def sample(client_ctx_telemetry: Any, name: str, **labels: str) -> float:
    value = client_ctx_telemetry.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def test_valid_lines_go_to_their_topic_with_key(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    docs = [
        envelope("options", key="trunk-a", event="o1"),
        envelope("cdr", key="1714557600.1", event="c1"),
        envelope("queue_log", key="1714557600.7", event="q1"),
        envelope("options", key="trunk-b", event="o2"),
    ]
    response = await client.post(URL, content=ndjson(*docs), headers=NDJSON)
    assert response.status_code == 200
    assert response.json() == {"accepted": 4, "deadlettered": 0, "lines": 4}

    options = producer.on(topic_for("options"))
    assert [key for key, _ in options] == [b"trunk-a", b"trunk-b"]
    assert producer.on(topic_for("cdr")) == [(b"1714557600.1", encode(validate(docs[1])))]
    assert producer.on(topic_for("queue_log"))[0][0] == b"1714557600.7"
    # Published in the canonical encoding: timestamps normalised to UTC with microseconds.
    first = orjson.loads(options[0][1])
    assert first["ts"] == "2024-05-01T08:00:00.123000Z"
    assert options[0][1] == encode(validate(docs[0]))
    assert producer.on(DEADLETTER) == []
    assert producer.flushes == 1


async def test_bad_lines_are_deadlettered_with_reason(
    client: httpx.AsyncClient, producer: RecordingProducer, ctx: Any
) -> None:
    missing_field = envelope("cdr", event="c2")
    del missing_field["body"]["uniqueid"]
    bad = [
        b'{"v":1,"kind":"options",',  # cut short: not JSON
        orjson.dumps({**envelope("options"), "kind": "smtp"}),  # wrong kind
        orjson.dumps(missing_field),  # missing body field
        b"[1,2,3]",  # JSON but not an object
    ]
    good = orjson.dumps(envelope("options", event="ok1"))
    body = b"\n".join([bad[0], good, bad[1], bad[2], bad[3]]) + b"\n"
    response = await client.post(URL, content=body, headers=NDJSON)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "deadlettered": 4, "lines": 5}

    records = deadletters(producer)
    assert [r["reason"] for r in records] == ["not_json", "unknown_kind", "invalid_envelope", "not_object"]
    assert [base64.b64decode(r["raw_b64"]) for r in records] == bad
    assert all(r["component"] == "ingest" and r["node"] == "api-test" for r in records)
    assert records[2]["detail"] == "cdr.body.uniqueid: Field required"
    assert all(key is None for key, _ in producer.on(DEADLETTER))
    assert len(producer.on(topic_for("options"))) == 1

    t = ctx.telemetry
    assert sample(t, "callscope_deadletters_total", component="ingest", reason="not_json") == 1
    assert sample(t, "callscope_deadletters_total", component="ingest", reason="unknown_kind") == 1
    assert sample(t, "callscope_deadletters_total", component="ingest", reason="invalid_envelope") == 1
    assert sample(t, "callscope_events_received_total", component="ingest", kind="options") == 1
    assert sample(t, "callscope_events_received_total", component="ingest", kind="invalid") == 4
    assert sample(t, "callscope_events_sent_total", component="ingest", kind="options") == 1


async def test_blank_lines_crlf_and_missing_final_newline(
    client: httpx.AsyncClient, producer: RecordingProducer
) -> None:
    body = b"\r\n" + orjson.dumps(envelope(event="a")) + b"\r\n\n   \n" + orjson.dumps(envelope(event="b"))
    response = await client.post(URL, content=body, headers=NDJSON)
    assert response.json() == {"accepted": 2, "deadlettered": 0, "lines": 2}
    assert [orjson.loads(v)["id"] for _, v in producer.on(topic_for("options"))] == ["a", "b"]


async def test_lines_split_across_chunks(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    body = ndjson(*(envelope(event=f"e{i}") for i in range(20)))

    async def tiny_chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    response = await client.post(URL, content=tiny_chunks(), headers=NDJSON)
    assert response.json() == {"accepted": 20, "deadlettered": 0, "lines": 20}
    assert [orjson.loads(v)["id"] for _, v in producer.on(topic_for("options"))] == [f"e{i}" for i in range(20)]


async def test_large_body_is_published_in_bounded_batches_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "BATCH_MAX_MESSAGES", 10)
    producer = RecordingProducer()
    ctx = make_context(tmp_path, producer, ingest_max_bytes=1024 * 1024)
    body = ndjson(*(envelope(event=f"e{i}", key=f"k{i % 3}") for i in range(35)))
    async with client_for(create_app(ctx)) as client:
        response = await client.post(URL, content=body, headers=NDJSON)
    assert response.json()["accepted"] == 35
    assert producer.batches == [(topic_for("options"), 10)] * 3 + [(topic_for("options"), 5)]
    assert [orjson.loads(v)["id"] for _, _, v in producer.sent] == [f"e{i}" for i in range(35)]


async def test_json_array_accepted(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    docs = [envelope(event="a"), envelope("cdr", event="b"), {"kind": "nope"}]
    response = await client.post(URL, content=orjson.dumps(docs), headers=JSON)
    assert response.json() == {"accepted": 2, "deadlettered": 1, "lines": 3}
    assert deadletters(producer)[0]["reason"] == "unknown_kind"


async def test_json_body_that_is_not_json_is_400(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    response = await client.post(URL, content=b"[{", headers=JSON)
    assert response.status_code == 400
    assert producer.sent == []


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    headers = {**NDJSON, "Content-Type": "text/csv"}
    response = await client.post(URL, content=ndjson(envelope()), headers=headers)
    assert response.status_code == 415
    assert producer.sent == []


async def test_declared_length_over_limit_is_413_before_reading(tmp_path: Path) -> None:
    producer = RecordingProducer()
    ctx = make_context(tmp_path, producer, ingest_max_bytes=2048)
    body = ndjson(*(envelope(event=f"e{i}") for i in range(20)))
    assert len(body) > 2048
    async with client_for(create_app(ctx)) as client:
        response = await client.post(URL, content=body, headers=NDJSON)
    assert response.status_code == 413
    assert response.json()["detail"]["limit"] == 2048
    assert producer.sent == []


async def test_chunked_body_over_limit_is_413_while_streaming(tmp_path: Path) -> None:
    producer = RecordingProducer()
    ctx = make_context(tmp_path, producer, ingest_max_bytes=2048)
    line = ndjson(envelope())
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(10_000):
            produced += 1
            yield line

    async with client_for(create_app(ctx)) as client:
        request = client.build_request("POST", URL, content=endless(), headers=NDJSON)
        assert "content-length" not in request.headers
        response = await client.send(request)
    assert response.status_code == 413
    published = response.json()["detail"]["published"]
    # The complete lines that fit under the limit were published and reported; reading stopped early.
    assert published["accepted"] == 2048 // len(line)
    assert len(producer.sent) == published["accepted"]
    assert produced < 100


async def test_body_exactly_at_limit_is_accepted(tmp_path: Path) -> None:
    producer = RecordingProducer()
    line = ndjson(envelope())
    ctx = make_context(tmp_path, producer, ingest_max_bytes=len(line) * 10)
    async with client_for(create_app(ctx)) as client:
        response = await client.post(URL, content=line * 10, headers=NDJSON)
    assert response.status_code == 200
    assert response.json()["accepted"] == 10


async def test_no_producer_is_503(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, None)
    async with client_for(create_app(ctx)) as client:
        response = await client.post(URL, content=ndjson(envelope()), headers=NDJSON)
    assert response.status_code == 503


async def test_bus_failure_is_503_with_retry_after(tmp_path: Path, unreachable_bus: RecordingProducer) -> None:
    ctx = make_context(tmp_path, unreachable_bus)
    async with client_for(create_app(ctx)) as client:
        response = await client.post(URL, content=ndjson(envelope()), headers=NDJSON)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert sample(ctx.telemetry, "callscope_errors_total", component="ingest", error="BusError") == 1


async def test_empty_body_accepts_nothing(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    response = await client.post(URL, content=b"", headers=NDJSON)
    assert response.json() == {"accepted": 0, "deadlettered": 0, "lines": 0}
    assert producer.sent == []
