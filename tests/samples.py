"""Sample envelopes per kind, shaped like what the collectors emit (test data)."""

from __future__ import annotations

from typing import Any

_BODIES: dict[str, dict[str, Any]] = {
    "sip": {
        "src": {"ip": "10.0.0.1", "port": 5060},
        "dst": {"ip": "10.0.0.2", "port": 5060},
        "transport": "udp",
        "is_request": True,
        "method": "INVITE",
        "call_id": "a84b4c76e66710@pc33.atlanta.example.com",
        "cseq": 314159,
        "from_user": "alice",
        "from_tag": "1928301774",
        "to_user": "bob",
        "raw": "INVITE sip:bob@biloxi.example.com SIP/2.0\r\nCall-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\r\n",
    },
    "rtcp": {
        "src": {"ip": "10.0.0.5", "port": 30001},
        "dst": {"ip": "10.0.0.6", "port": 30003},
        "correlation_id": "a84b4c76e66710@pc33.atlanta.example.com",
        "report": {"type": 200, "ssrc": 1, "report_blocks": [{"fraction_lost": 0, "ia_jitter": 12}]},
    },
    "ami": {"event": "Hangup", "fields": {"Linkedid": "1700000000.1", "Uniqueid": "1700000000.2", "Cause": "16"}},
    "cdr": {
        "uniqueid": "1700000000.1",
        "src": "100",
        "dst": "200",
        "disposition": "ANSWERED",
        "duration": 30,
        "billsec": 25,
    },
    "cel": {
        "eventtype": "CHAN_START",
        "uniqueid": "1700000000.1",
        "linkedid": "1700000000.1",
        "channame": "PJSIP/100-0001",
    },
    "queue_log": {
        "callid": "1700000000.1",
        "queue": "support",
        "agent": "NONE",
        "event": "ENTERQUEUE",
        "data": ["", "100", "1"],
    },
    "options": {
        "target": "carrier-a",
        "uri": "sip:carrier-a.example.net",
        "status": 200,
        "reason": "OK",
        "rtt_ms": 12.5,
    },
    "log": {"message": "call routed", "level": "info", "call_id": "a84b4c76e66710@pc33.atlanta.example.com"},
}

_KEYS = {
    "sip": "a84b4c76e66710@pc33.atlanta.example.com",
    "rtcp": "a84b4c76e66710@pc33.atlanta.example.com",
    "ami": "1700000000.1",
    "cdr": "1700000000.1",
    "cel": "1700000000.1",
    "queue_log": "1700000000.1",
    "options": "carrier-a",
    "log": "a84b4c76e66710@pc33.atlanta.example.com",
}


def sample_envelope(kind: str, *, id: str | None = None, key: str | None = None, node: str = "sbc1") -> dict[str, Any]:
    """A valid envelope document of ``kind`` (a fresh, mutable copy)."""
    import copy

    return {
        "v": 1,
        "kind": kind,
        "id": id or f"{kind}-0001",
        "node": node,
        "role": "sbc",
        "ts": "2024-03-01T10:00:00.000001Z",
        "received": "2024-03-01T10:00:00.000500Z",
        "key": key if key is not None else _KEYS[kind],
        "body": copy.deepcopy(_BODIES[kind]),
    }
