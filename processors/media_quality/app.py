"""I/O shell of the media_quality processor: ``callscope.rtcp`` and ``callscope.sip`` into ``media_quality``.

Delivery as :mod:`processors.call_legs.app` (shared shell). Rows have stable ids
(event id + block), so a replay after a crash collapses in the table. The codec
clock rates and SR times held in memory are not reloaded: after a restart, until
the call's SDP or SR is seen again, jitter uses 8000 Hz and RTT is 'missing'.
"""

from __future__ import annotations

from datetime import datetime

from callscope.bus.base import Record
from processors.call_legs.app import CorrelatingShell, PendingRow
from processors.media_quality.mos import MediaQualityCore
from processors.prefilter import may_carry_media
from schemas.envelope import RtcpEnvelope
from schemas.topics import topic_for
from schemas.wire import SIP_ENVELOPES, Decoded

NAME = "media_quality"
_SIP = topic_for("sip")


class MediaQualityProcessor(CorrelatingShell):
    name = NAME
    topics = (topic_for("rtcp"), topic_for("sip"))
    tables = ("media_quality",)

    core: MediaQualityCore

    async def _reload(self) -> None:
        self.core = MediaQualityCore()

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        # Every RTCP report matters; of SIP only what carries SDP (codecs) or a VQ report (PUBLISH).
        if topic != _SIP:
            return True
        env = self.envelopes.peek(value, record)  # decoded by another processor of the process already?
        if env is not None:
            return isinstance(env, SIP_ENVELOPES) and (env.body.sdp is not None or bool(env.body.vq_report))
        return may_carry_media(value)

    def _feed(self, env: Decoded) -> list[PendingRow]:
        if isinstance(env, RtcpEnvelope):
            rows = self.core.feed_rtcp(env)
        elif isinstance(env, SIP_ENVELOPES):
            rows = self.core.feed_sip(env)
        else:
            return []
        return [("media_quality", r.id, r.values()) for r in rows]

    def _expire(self, now: datetime) -> list[PendingRow]:
        self.core.expire()  # forgets idle calls' codecs and SR times; no row comes of it
        return []
