"""Media quality figures: a simplified ITU-T G.107 E-model, and RTCP / VQ reports into rows.

Pure: no I/O, no clock. docs/mos.md explains every choice; in short:

E-model (:func:`r_factor`, :func:`mos_from_r`)::

    R = (Ro - Is) - Id - Ie_eff + A          Ro - Is = 93.2 (G.107 defaults), A = 0
    Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)     d: one-way delay in ms
    Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)   G.711: Ie = 0, Bpl = 25.1 (with PLC), BurstR = 1
    MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6   (1 below R = 0, 4.5 above R = 100)

with d = RTT / 2 + jitter buffer, the buffer assumed as max(20 ms, 2 x jitter).

rtpengine's RTCP JSON (HEP type 5, read from its ``homer`` output code and the corpus):

- ``fraction_lost`` is the raw 8-bit RTCP field (loss fraction x 256), so /256;
- ``packets_lost`` is the 24-bit signed cumulative count printed unsigned: values
  from 2^23 are negative (duplicates);
- ``ia_jitter`` is in RTP timestamp units: ms = ia_jitter x 1000 / clock rate
  (the codec's rate when the SDP of the call was seen, else 8000);
- ``lsr`` / ``dlsr`` are the RTCP words (some versions print ``lsr`` signed: +2^32);
  ``sender_information.ntp_timestamp_usec`` is, despite its name, the NTP
  fraction (units of 2^-32 s); a value past 32 bits (seen in the corpus) is unusable;
- ``report_count`` may be 0 with one block: the blocks are read whatever it says;
- the ``type`` is that of the last packet of the compound (202 = SDES after an SR):
  a report with ``sender_information`` is an SR.

RTT at a capture point in the middle (rtpengine relays RTCP): an SR passing at
capture time T_sr carries NTP time X; the RR that answers it carries
LSR = middle 32 bits of X and DLSR; captured at T_rr, the round trip between the
capture point and the reporter is T_rr - T_sr - DLSR, all on the capture clock.
Without the SR (lsr = 0, or the SR not seen: one-sided capture) 'rtt' is missing.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from schemas.envelope import RtcpEnvelope
from schemas.tables import micros
from schemas.wire import SipLike

RO_MINUS_IS = 93.2
G711_BPL = 25.1
DEFAULT_CLOCK_RATE = 8000
MIN_JITTER_BUFFER_MS = 20.0


def delay_impairment(one_way_ms: float) -> float:
    """Id of G.107, simplified (Cole & Rosenbluth's fit): 0.024 d + 0.11 (d - 177.3) above 177.3 ms."""
    d = max(0.0, one_way_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def equipment_impairment(
    loss_fraction: float, *, ie: float = 0.0, bpl: float = G711_BPL, burst_r: float = 1.0
) -> float:
    """Ie_eff of G.107 for random loss ``loss_fraction`` (0..1); defaults are G.711 with PLC."""
    ppl = min(max(loss_fraction, 0.0), 1.0) * 100.0
    return ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(
    *, loss_fraction: float, one_way_ms: float, ie: float = 0.0, bpl: float = G711_BPL, burst_r: float = 1.0
) -> float:
    """The transmission rating R (G.107 defaults, advantage factor 0)."""
    return (
        RO_MINUS_IS
        - delay_impairment(one_way_ms)
        - equipment_impairment(loss_fraction, ie=ie, bpl=bpl, burst_r=burst_r)
    )


def mos_from_r(r: float) -> float:
    """MOS-CQE from R (G.107 Annex B)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def one_way_delay_ms(rtt_ms: float | None, jitter_ms: float | None) -> float:
    """RTT/2 (0 when unknown) plus the assumed jitter buffer max(20 ms, 2 x jitter)."""
    buffer = max(MIN_JITTER_BUFFER_MS, 2.0 * (jitter_ms or 0.0))
    return (rtt_ms or 0.0) / 2.0 + buffer


def score(loss_fraction: float, rtt_ms: float | None, jitter_ms: float | None) -> tuple[float, float]:
    """(R, MOS) for G.711 with the delay assumption of :func:`one_way_delay_ms`."""
    r = r_factor(loss_fraction=loss_fraction, one_way_ms=one_way_delay_ms(rtt_ms, jitter_ms))
    return r, mos_from_r(r)


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QualityRow:
    """One ``media_quality`` row (columns of ``schemas.tables.COLUMNS['media_quality']``)."""

    id: str
    call_id: str
    correlation_id: str
    node: str
    ts: datetime
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int
    source_ssrc: int
    report_type: str
    packets_lost: int
    fraction_lost: float
    jitter_ms: float | None
    rtt_ms: float | None
    r_factor: float | None
    mos: float | None
    missing: tuple[str, ...]
    clock_rate: int
    codec: str

    def values(self) -> tuple[Any, ...]:
        return tuple(list(v) if isinstance(v, tuple) else v for v in (getattr(self, f.name) for f in fields(self)))


def _u32(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = int(value)
    if v < 0:
        v += 1 << 32
    return v if 0 <= v < (1 << 32) else None


def _lost(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return 0
    if value >= 1 << 31:  # a negative 32-bit value printed unsigned
        return value - (1 << 32)
    if (1 << 23) <= value < (1 << 24):  # the 24-bit signed field printed unsigned
        return value - (1 << 24)
    return value


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and 0.0 <= value <= 1.0 and not value.is_integer():
        return value  # already a fraction (not rtpengine's format)
    return min(max(float(value), 0.0), 255.0) / 256.0


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class MediaQualityLimits:
    calls_max: int = 100_000  # calls whose codec / SR times are remembered (oldest forgotten first)
    srs_per_call: int = 64  # SR times remembered per call
    # A call neither SIP with SDP nor RTCP touched for this long is forgotten (rtpengine reports
    # every ~5 s while media flows). Counted on the processor's clock, not the events' times.
    idle_secs: float = 120.0


class MediaQualityCore:
    """RTCP reports (and VQ PUBLISH bodies) in, ``media_quality`` rows out.

    Remembers per Call-ID the codec clock rate from SDP seen on ``callscope.sip``
    and the capture time of each SR (by its LSR key) for RTT. Bounded by count (LRU,
    ``calls_max``) and by idleness (:meth:`expire`, ``idle_secs``): a call that comes back
    after being forgotten uses 8000 Hz and reports RTT as missing until its SDP or SR is seen again.
    """

    def __init__(self, limits: MediaQualityLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or MediaQualityLimits()
        self._clock = clock
        self._codecs: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._srs: OrderedDict[str, OrderedDict[int, int]] = OrderedDict()
        self._touched: OrderedDict[str, float] = OrderedDict()  # call -> last feed, oldest first

    def __len__(self) -> int:
        """Calls remembered (codec and SR times), the state the soak watches."""
        return len(self._codecs) + len(self._srs)

    def expire(self) -> int:
        """Forget the calls idle for ``idle_secs``; returns how many."""
        deadline = self._clock() - self.limits.idle_secs
        touched = self._touched
        n = 0
        while touched:
            call_id, when = next(iter(touched.items()))
            if when > deadline:
                break
            del touched[call_id]
            self._codecs.pop(call_id, None)
            self._srs.pop(call_id, None)
            n += 1
        return n

    def _touch(self, call_id: str) -> None:
        self._touched[call_id] = self._clock()
        self._touched.move_to_end(call_id)
        while len(self._touched) > self.limits.calls_max:
            oldest, _ = self._touched.popitem(last=False)
            self._codecs.pop(oldest, None)
            self._srs.pop(oldest, None)

    # -- SIP side -------------------------------------------------------------------------

    def feed_sip(self, env: SipLike) -> list[QualityRow]:
        """Learn the call's codec from SDP; a PUBLISH with a VQ-RTCPXR body becomes a 'VQ' row."""
        b = env.body
        if b.sdp is not None:
            for media in b.sdp.media:
                if media.media == "audio" and media.codecs:
                    name, _, rate = media.codecs[0].partition("/")
                    clock = int(rate.split("/", 1)[0]) if rate.split("/", 1)[0].isdigit() else DEFAULT_CLOCK_RATE
                    self._remember(self._codecs, b.call_id, (name, clock))
                    self._touch(b.call_id)
                    break
        if b.vq_report and b.is_request and (b.method or "").upper() == "PUBLISH":
            row = self._vq(env, b.vq_report)
            return [] if row is None else [row]
        return []

    def _remember(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.limits.calls_max:
            store.popitem(last=False)

    def _vq(self, env: SipLike, report: dict[str, Any]) -> QualityRow | None:
        call_id = str(report.get("CallID") or env.body.call_id)
        local = _section(report, "LocalAddr")
        remote = _section(report, "RemoteAddr")
        loss = _section(report, "PacketLoss")
        delay = _section(report, "Delay")
        quality = _section(report, "QualityEst")
        session = _section(report, "SessionDesc")
        missing: list[str] = []
        nlr = _num(loss.get("NLR"))
        if nlr is None:
            missing.append("loss")
        jitter = _num(delay.get("IAJ"))
        if jitter is None:
            missing.append("jitter")
        rtt = _num(delay.get("RTD"))
        if rtt is None:
            missing.append("rtt")
        missing.append("packets_lost")
        fraction = (nlr or 0.0) / 100.0
        r = _num(quality.get("RCQ")) or _num(quality.get("RLQ"))
        mos = _num(quality.get("MOSCQ")) or _num(quality.get("MOSLQ"))
        if r is None and nlr is not None:
            r, _ = score(fraction, rtt, jitter)
        if mos is None and r is not None:
            mos = mos_from_r(r)
        clock = _num(session.get("SR"))
        return QualityRow(
            id=f"{env.id}:vq",
            call_id=call_id,
            correlation_id=env.body.correlation_id or "",
            node=env.node,
            ts=env.ts,
            src_ip=str(local.get("IP") or ""),
            src_port=_port(local.get("PORT")),
            dst_ip=str(remote.get("IP") or ""),
            dst_port=_port(remote.get("PORT")),
            ssrc=_ssrc(local.get("SSRC")),
            source_ssrc=_ssrc(remote.get("SSRC")),
            report_type="VQ",
            packets_lost=0,
            fraction_lost=fraction,
            jitter_ms=jitter,
            rtt_ms=rtt,
            r_factor=_round(r),
            mos=_round(mos),
            missing=tuple(missing),
            clock_rate=int(clock) if clock else DEFAULT_CLOCK_RATE,
            codec=str(session.get("PD") or ""),
        )

    # -- RTCP side ------------------------------------------------------------------------

    def feed_rtcp(self, env: RtcpEnvelope) -> list[QualityRow]:
        """One row per report block (and one for a VoIP-metrics XR block)."""
        b = env.body
        report = b.report
        call_id = b.correlation_id or env.key
        ts = micros(env.ts)
        if call_id in self._touched or isinstance(report.get("sender_information"), dict):
            self._touch(call_id)
        sender = report.get("sender_information")
        report_type = "SR" if isinstance(sender, dict) else "RR"
        if isinstance(sender, dict):
            self._sr_seen(call_id, sender, ts)
        codec, clock = self._codecs.get(call_id, ("", DEFAULT_CLOCK_RATE))
        ssrc = _u32(report.get("ssrc")) or 0
        srs = self._srs.get(call_id)
        rows: list[QualityRow] = []
        blocks = report.get("report_blocks")
        for index, block in enumerate(blocks if isinstance(blocks, list) else []):
            if not isinstance(block, dict):
                continue
            missing: list[str] = []
            fraction = _fraction(block.get("fraction_lost"))
            if fraction is None:
                missing.append("loss")
            jitter_units = _u32(block.get("ia_jitter"))
            jitter = None if jitter_units is None else jitter_units * 1000.0 / clock
            if jitter is None:
                missing.append("jitter")
            rtt = None
            lsr, dlsr = _u32(block.get("lsr")), _u32(block.get("dlsr"))
            if lsr and dlsr is not None and srs is not None and lsr in srs:
                rtt_us = ts - srs[lsr] - dlsr * 1_000_000 / 65536
                rtt = rtt_us / 1000.0 if rtt_us >= 0 else None
            if rtt is None:
                missing.append("rtt")
            r = mos = None
            if fraction is not None:
                r, mos = score(fraction, rtt, jitter)
            else:
                missing.append("mos")
            rows.append(
                QualityRow(
                    id=f"{env.id}:{index}",
                    call_id=call_id,
                    correlation_id=b.correlation_id or "",
                    node=env.node,
                    ts=env.ts,
                    src_ip=b.src.ip,
                    src_port=b.src.port,
                    dst_ip=b.dst.ip,
                    dst_port=b.dst.port,
                    ssrc=ssrc,
                    source_ssrc=_u32(block.get("source_ssrc")) or 0,
                    report_type=report_type,
                    packets_lost=_lost(block.get("packets_lost")),
                    fraction_lost=fraction or 0.0,
                    jitter_ms=_round(jitter),
                    rtt_ms=_round(rtt),
                    r_factor=_round(r),
                    mos=_round(mos),
                    missing=tuple(missing),
                    clock_rate=clock,
                    codec=codec,
                )
            )
        xr = report.get("report_blocks_xr")
        if isinstance(xr, dict) and xr.get("type") == 7:  # RFC 3611 VoIP metrics
            rows.append(self._xr(env, call_id, ssrc, xr, (codec, clock)))
        return rows

    def _sr_seen(self, call_id: str, sender: dict[str, Any], ts: int) -> None:
        sec, frac = _u32(sender.get("ntp_timestamp_sec")), _u32(sender.get("ntp_timestamp_usec"))
        if sec is None or frac is None:
            return  # the fraction past 32 bits (seen in the corpus) cannot give an LSR
        key = ((sec & 0xFFFF) << 16) | (frac >> 16)
        srs = self._srs.get(call_id)
        if srs is None:
            srs = OrderedDict()
        srs[key] = ts
        while len(srs) > self.limits.srs_per_call:
            srs.popitem(last=False)
        self._remember(self._srs, call_id, srs)

    def _xr(self, env: RtcpEnvelope, call_id: str, ssrc: int, xr: dict[str, Any], media: tuple[str, int]) -> QualityRow:
        codec, clock = media
        b = env.body
        fraction = _fraction(xr.get("fraction_lost"))
        rtt = _num(xr.get("round_trip_delay")) or None
        missing = ["jitter", "packets_lost"] + ([] if rtt else ["rtt"]) + ([] if fraction is not None else ["loss"])
        r, mos = score(fraction or 0.0, rtt, None)
        return QualityRow(
            id=f"{env.id}:xr",
            call_id=call_id,
            correlation_id=b.correlation_id or "",
            node=env.node,
            ts=env.ts,
            src_ip=b.src.ip,
            src_port=b.src.port,
            dst_ip=b.dst.ip,
            dst_port=b.dst.port,
            ssrc=ssrc,
            source_ssrc=_u32(xr.get("id")) or 0,
            report_type="XR",
            packets_lost=0,
            fraction_lost=fraction or 0.0,
            jitter_ms=None,
            rtt_ms=rtt,
            r_factor=_round(r),
            mos=_round(mos),
            missing=tuple(missing),
            clock_rate=clock,
            codec=codec,
        )


def _section(report: dict[str, Any], name: str) -> dict[str, Any]:
    value = report.get(name)
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _port(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value <= 65535 else 0


def _ssrc(value: Any) -> int:
    if isinstance(value, int) and 0 <= value < 1 << 32:
        return value
    if isinstance(value, str):
        try:
            v = int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return 0
        return v if 0 <= v < 1 << 32 else 0
    return 0
