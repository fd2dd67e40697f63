"""Generated SIP message sequences for the leg, registration and media tests (test data)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import SipEnvelope, validate

T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)

CALLER = ("10.0.0.1", 5060)
SBC = ("10.0.0.2", 5060)
PROXY = ("10.0.0.3", 5060)
CALLEE = ("10.0.0.4", 5060)
CALLEE2 = ("10.0.0.5", 5060)


def at(secs: float) -> datetime:
    return T0 + timedelta(seconds=secs)


def ep(addr: tuple[str, int]) -> dict[str, Any]:
    return {"ip": addr[0], "port": addr[1]}


@dataclass
class Dialog:
    """One INVITE dialog: builds its messages as envelopes."""

    call_id: str = "call-1@10.0.0.1"
    caller: str = "1001"
    callee: str = "2002"
    from_tag: str = "ft-a"
    node: str = "sbc1"
    extra: dict[str, Any] = field(default_factory=dict)

    def msg(
        self,
        t: float,
        method: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        cseq: int = 1,
        to_tag: str | None = None,
        branch: str = "z9hG4bK-inv1",
        from_callee: bool = False,
        src: tuple[str, int] = CALLER,
        dst: tuple[str, int] = SBC,
        node: str | None = None,
        codecs: list[str] | None = None,
        **body: Any,
    ) -> SipEnvelope:
        is_request = status is None
        from_user, to_user = (self.callee, self.caller) if from_callee else (self.caller, self.callee)
        from_tag: str | None = to_tag if from_callee else self.from_tag
        to_tag_v: str | None = self.from_tag if from_callee else to_tag
        doc: dict[str, Any] = {
            "src": ep(src),
            "dst": ep(dst),
            "is_request": is_request,
            "method": method,
            "status": status,
            "reason": reason,
            "call_id": self.call_id,
            "cseq": cseq,
            "from_user": from_user,
            "from_tag": from_tag,
            "from_uri": f"sip:{from_user}@example.com",
            "to_user": to_user,
            "to_tag": to_tag_v,
            "to_uri": f"sip:{to_user}@example.com",
            "via_branch": branch,
            "via_branches": [branch],
            "raw": f"{method} ...",
        }
        if is_request and method == "INVITE" and not to_tag:
            doc["request_uri"] = f"sip:{self.callee}@example.com"
        if codecs is not None:
            doc["sdp"] = {"media": [{"media": "audio", "port": 4000, "codecs": codecs}]}
        doc.update(self.extra if (is_request and method == "INVITE" and not to_tag) else {})
        doc.update(body)
        node = node or self.node
        ident = hashlib.blake2b(repr((node, t, sorted(doc.items(), key=str))).encode(), digest_size=12).hexdigest()
        env = validate(
            {
                "kind": "sip",
                "id": ident,
                "node": node,
                "role": "sbc",
                "ts": at(t).isoformat(),
                "received": at(t).isoformat(),
                "key": self.call_id,
                "body": doc,
            }
        )
        assert isinstance(env, SipEnvelope)
        return env
