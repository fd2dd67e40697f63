"""I/O shell of the registrations processor: ``callscope.sip`` (its own group) into ``registrations``.

Delivery as :mod:`processors.call_legs.app` (shared shell): rows are written before
offsets are committed. On start, REGISTERs still unanswered (status 0) from the
last few minutes are reloaded from the table, so an answer re-read after a crash
completes its row; re-fed messages of answered transactions give identical
content and write nothing new (and the table keeps one row per id under FINAL).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from callscope.bus.base import Record
from processors.call_legs.app import CorrelatingShell, PendingRow
from processors.prefilter import method_is
from processors.registrations.correlator import RegistrationCorrelator, RegistrationRow
from schemas.topics import topic_for
from schemas.wire import SIP_ENVELOPES, Decoded

NAME = "registrations"
RELOAD_SECS = 300


class RegistrationsProcessor(CorrelatingShell):
    name = NAME
    topics = (topic_for("sip"),)
    tables = ("registrations",)

    correlator: RegistrationCorrelator

    async def _reload(self) -> None:
        self.correlator = RegistrationCorrelator()
        rows = await asyncio.to_thread(
            self._store.query,
            "SELECT * FROM registrations FINAL WHERE status = 0 AND reason = ''"
            " AND requested_at >= {now:DateTime64(6, 'UTC')} - toIntervalSecond({window:UInt32})",
            {"now": self._wall(), "window": RELOAD_SECS},
        )
        for row in rows:
            self.correlator.restore(RegistrationRow(**{k: row[k] for k in RegistrationRow.__dataclass_fields__}))

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        # Only REGISTER transactions matter: skip the full validation of every other SIP message
        # (the bytes are looked at when no other processor of the process has decoded the record yet).
        env = self.envelopes.peek(value, record)
        if env is not None:
            return isinstance(env, SIP_ENVELOPES) and (env.body.method or "").upper() == "REGISTER"
        return method_is(value, b"register")

    def _feed(self, env: Decoded) -> list[PendingRow]:
        if not isinstance(env, SIP_ENVELOPES):
            return []
        return [("registrations", r.id, r.values()) for r in self.correlator.feed(env)]

    def _expire(self, now: datetime) -> list[PendingRow]:
        return [("registrations", r.id, r.values()) for r in self.correlator.expire(now)]
