"""A pure pcap / pcapng reader for SIP captures: bytes in, transport payloads out.

No I/O beyond the file object it is given, no clock, no third-party parser.

- Files: classic pcap (both byte orders, micro- and nanosecond magic) and pcapng
  (SHB, IDB with per-interface link type and ``if_tsresol``/``if_tsoffset``, EPB,
  SPB and the obsolete packet block), sniffed by magic.
- Link types: NULL/loopback (0, 108), Ethernet (1) with 802.1Q/QinQ VLAN tags,
  MPLS and PPPoE, Linux cooked SLL v1 (113) and v2 (276), raw IP (12, 14, 101,
  228, 229).
- Network: IPv4 and IPv6 (extension headers, fragment reassembly for both),
  IP-in-IP / IPv6-in-IPv4 / IPv6-in-IPv6, GRE (plain, transparent Ethernet
  bridging, ERSPAN types I, II and III).
- Transport: UDP datagrams as they are; SCTP DATA chunks; TCP reassembled per
  flow by sequence number (retransmitted and overlapping bytes dropped, out of
  order segments held) and cut into messages: SIP by ``Content-Length``, SIP over
  WebSocket frames after an HTTP upgrade, HEP3 by its length field. TCP streams
  that carry none of these (HTTP on 5060) yield nothing.

:class:`PcapReader` yields :class:`Packet` tuples
``(ts_us, src_ip, src_port, dst_ip, dst_port, ip_proto, payload)``. A file whose
structure is corrupt or truncated raises :class:`PcapError` (a
:class:`~schemas.errors.DecodeError` with a bounded ``reason``); a frame whose
inner layers are malformed is skipped and counted in :attr:`PcapReader.skipped`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from schemas.errors import DecodeError

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_SCTP = 132

_MAX_REASSEMBLIES = 1024  # IP datagrams held in fragment reassembly at once
_MAX_TCP_PENDING = 512  # out-of-order segments held per TCP flow before the gap is skipped
_MAX_TCP_BUFFER = 1 << 20  # bytes of one TCP flow held while a message is incomplete
_MAX_HEADER_BYTES = 64 * 1024  # a SIP/HTTP header block longer than this is not SIP
_MAX_RECORD = 256 * 1024 * 1024


class PcapError(DecodeError):
    """A capture file that cannot be read (bad magic, truncated or corrupt record)."""

    reason = "pcap"


class Packet(NamedTuple):
    """One transport payload: a UDP datagram, an SCTP chunk or one message cut from a TCP stream."""

    ts_us: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ip_proto: int
    payload: bytes


class Frame(NamedTuple):
    ts_us: int
    linktype: int
    data: bytes


class _MalformedError(Exception):
    """A frame's inner layers do not parse: the frame is skipped (internal)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- file layer

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1000),  # nanoseconds: divide by 1000
    b"\xa1\xb2\x3c\x4d": (">", 1000),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def is_capture(head: bytes) -> bool:
    """True when ``head`` starts like a pcap or pcapng file."""
    return head[:4] in PCAP_MAGICS or (
        head[:4] == PCAPNG_MAGIC and head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d")
    )


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes | None:
    """``n`` bytes, None at a clean end of file, PcapError when the file stops inside a record."""
    data = fh.read(n)
    if not data:
        return None
    if len(data) < n:
        raise PcapError(f"file ends inside {what} ({len(data)} of {n} bytes)", reason="truncated")
    return data


def iter_frames(fh: BinaryIO) -> Iterator[Frame]:
    """The link-layer frames of a pcap or pcapng file, in file order."""
    head = fh.read(4)
    if head in PCAP_MAGICS:
        yield from _pcap_frames(fh, head)
    elif head == PCAPNG_MAGIC:
        yield from _pcapng_frames(fh)
    else:
        raise PcapError(f"not a pcap or pcapng file (magic {head.hex() or 'empty'})", reason="magic")


def _pcap_frames(fh: BinaryIO, magic: bytes) -> Iterator[Frame]:
    order, divisor = PCAP_MAGICS[magic]
    rest = _read_exact(fh, 20, "the file header")
    if rest is None:
        raise PcapError("file ends inside the file header", reason="truncated")
    _vmaj, _vmin, _zone, _sig, _snaplen, linktype = struct.unpack(order + "HHiIII", rest)
    linktype &= 0x0FFFFFFF  # the upper bits carry FCS flags
    rec = struct.Struct(order + "IIII")
    while True:
        hdr = _read_exact(fh, 16, "a record header")
        if hdr is None:
            return
        sec, frac, incl, _orig = rec.unpack(hdr)
        if incl > _MAX_RECORD:
            raise PcapError(f"record length {incl} is implausible", reason="corrupt")
        data = _read_exact(fh, incl, "a record") if incl else b""
        if data is None:
            raise PcapError("file ends inside a record", reason="truncated")
        yield Frame(sec * 1_000_000 + frac // divisor, linktype, data)


@dataclass
class _Interface:
    linktype: int
    units_per_sec: int = 1_000_000
    offset_sec: int = 0


def _pcapng_frames(fh: BinaryIO) -> Iterator[Frame]:
    order = "<"
    interfaces: list[_Interface] = []
    first = True
    last_ts = 0
    while True:
        if first:
            btype_raw = PCAPNG_MAGIC
            first = False
        else:
            got = _read_exact(fh, 4, "a block header")
            if got is None:
                return
            btype_raw = got
        raw_len = _read_exact(fh, 4, "a block header")
        if raw_len is None:
            raise PcapError("file ends inside a block header", reason="truncated")
        if btype_raw == PCAPNG_MAGIC:
            bom = _read_exact(fh, 4, "a section header")
            if bom is None:
                raise PcapError("file ends inside a section header", reason="truncated")
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise PcapError("bad pcapng byte-order magic", reason="corrupt")
            total = struct.unpack(order + "I", raw_len)[0]
            if total < 28 or total % 4 or total > _MAX_RECORD:
                raise PcapError(f"bad section header length {total}", reason="corrupt")
            if _read_exact(fh, total - 12, "a section header") is None:
                raise PcapError("file ends inside a section header", reason="truncated")
            interfaces = []  # interface ids are per section
            continue
        btype = struct.unpack(order + "I", btype_raw)[0]
        total = struct.unpack(order + "I", raw_len)[0]
        if total < 12 or total % 4 or total > _MAX_RECORD:
            raise PcapError(f"bad block length {total}", reason="corrupt")
        body = _read_exact(fh, total - 8, "a block")
        if body is None:
            raise PcapError("file ends inside a block", reason="truncated")
        body = body[:-4]  # trailing copy of the total length
        if btype == 1:  # interface description
            if len(body) < 8:
                raise PcapError("short interface description block", reason="corrupt")
            linktype = struct.unpack_from(order + "H", body, 0)[0]
            interfaces.append(_parse_idb_options(order, linktype, body[8:]))
        elif btype in (6, 2):  # enhanced packet / obsolete packet block
            if len(body) < 20:
                raise PcapError("short packet block", reason="corrupt")
            if btype == 6:
                iface_id, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", body, 0)
            else:
                iface_id, _drops, hi, lo, caplen, _orig = struct.unpack_from(order + "HHIIII", body, 0)
            if iface_id >= len(interfaces):
                raise PcapError(f"packet on undeclared interface {iface_id}", reason="corrupt")
            if 20 + caplen > len(body):
                raise PcapError("packet block shorter than its captured length", reason="corrupt")
            iface = interfaces[iface_id]
            units = (hi << 32) | lo
            ts_us = (units * 1_000_000) // iface.units_per_sec + iface.offset_sec * 1_000_000
            last_ts = ts_us
            yield Frame(ts_us, iface.linktype, body[20 : 20 + caplen])
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            if not interfaces:
                raise PcapError("simple packet block before any interface", reason="corrupt")
            if len(body) < 4:
                raise PcapError("short simple packet block", reason="corrupt")
            orig = struct.unpack_from(order + "I", body, 0)[0]
            yield Frame(last_ts, interfaces[0].linktype, body[4 : 4 + orig])
        # other blocks (name resolution, statistics, custom) carry no packets


def _parse_idb_options(order: str, linktype: int, opts: bytes) -> _Interface:
    iface = _Interface(linktype)
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(order + "HH", opts, pos)
        value = opts[pos + 4 : pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
        if code == 0:
            break
        if len(value) < length:
            raise PcapError(f"interface option {code} runs past its block", reason="corrupt")
        if code == 9 and length >= 1:  # if_tsresol
            res = value[0]
            iface.units_per_sec = (2 ** (res & 0x7F)) if res & 0x80 else 10 ** (res & 0x7F)
            if iface.units_per_sec == 0:
                iface.units_per_sec = 1_000_000
        elif code == 14 and length >= 8:  # if_tsoffset (seconds)
            iface.offset_sec = struct.unpack(order + "q", value[:8])[0]
    return iface


# ---------------------------------------------------------------- HEP / SIP sniffing

_SIP_METHODS = (
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
)


def looks_like_sip(payload: bytes) -> bool:
    """True when the first line is a SIP request line or status line."""
    end = payload.find(b"\r\n", 0, 2048)
    line = payload[: end if end >= 0 else 2048]
    if line.startswith(b"SIP/2.0 "):
        return True
    return line.endswith(b" SIP/2.0") and line.split(b" ", 1)[0].upper() in _SIP_METHODS


def hep_version(payload: bytes) -> int | None:
    """3, 2 or 1 when ``payload`` looks like a HEP packet, else None.

    HEP3 starts with ``HEP3`` (or ``EEP1``) and a length that fits the datagram; HEPv1/v2 start
    with the version byte, a header length of 16 (IPv4) or 40 (IPv6) and a matching family.
    """
    if len(payload) >= 6 and payload[:4] in (b"HEP3", b"EEP1"):
        length = int.from_bytes(payload[4:6], "big")
        return 3 if 6 <= length <= len(payload) else None
    if len(payload) >= 16 and payload[0] in (1, 2):
        hdr_len, family, proto = payload[1], payload[2], payload[3]
        if (hdr_len, family) in ((16, 2), (40, 10)) and proto in (PROTO_UDP, PROTO_TCP, PROTO_SCTP):
            need = hdr_len + (12 if payload[0] == 2 else 0)
            return payload[0] if len(payload) >= need else None
    return None


# ---------------------------------------------------------------- reader


@dataclass
class _Flow:
    next_seq: int | None = None
    buf: bytearray = field(default_factory=bytearray)
    pending: dict[int, bytes] = field(default_factory=dict)
    mode: str = "detect"  # detect | sip | hep | ws | other
    ws_parts: bytearray = field(default_factory=bytearray)


class PcapReader:
    """Iterate a capture's UDP/SCTP payloads and the messages of its TCP streams.

    ``skipped`` counts frames and bytes left out, by bounded reason (``non_ip``,
    ``malformed``, ``snaplen``, ``tcp_retransmission``, ``tcp_gap``, ``tcp_not_sip`` ...).
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.frames = 0
        self.skipped: Counter[str] = Counter()
        self._frags: dict[tuple[object, ...], _Fragments] = {}
        self._flows: dict[tuple[str, int, str, int], _Flow] = {}
        self._sctp_parts: dict[tuple[str, int, str, int, int], bytearray] = {}

    def __iter__(self) -> Iterator[Packet]:
        for frame in iter_frames(self._fh):
            self.frames += 1
            try:
                yield from self._frame(frame)
            except (_MalformedError, struct.error, IndexError, ValueError) as exc:
                self.skipped[exc.reason if isinstance(exc, _MalformedError) else "malformed"] += 1
        yield from self._finish_tcp()

    # link layer ------------------------------------------------------
    def _frame(self, frame: Frame) -> Iterator[Packet]:
        lt, data = frame.linktype, frame.data
        if lt == 1:
            ethertype, off = _ether(data, 12)
            yield from self._ethertype(frame.ts_us, ethertype, data[off:])
        elif lt in (0, 108):  # NULL (host order) / LOOP (network order)
            fam_le = int.from_bytes(data[:4], "little")
            fam_be = int.from_bytes(data[:4], "big")
            fam = fam_be if lt == 108 else (fam_le if fam_le < 256 else fam_be)
            yield from self._ip(frame.ts_us, data[4:], 4 if fam == 2 else 6 if fam in (10, 24, 28, 30) else 0)
        elif lt == 113:  # Linux SLL
            yield from self._ethertype(frame.ts_us, int.from_bytes(data[14:16], "big"), data[16:])
        elif lt == 276:  # Linux SLL2
            yield from self._ethertype(frame.ts_us, int.from_bytes(data[0:2], "big"), data[20:])
        elif lt in (12, 14, 101):
            yield from self._ip(frame.ts_us, data, 0)
        elif lt == 228:
            yield from self._ip(frame.ts_us, data, 4)
        elif lt == 229:
            yield from self._ip(frame.ts_us, data, 6)
        else:
            self.skipped["linktype"] += 1

    def _ethertype(self, ts: int, ethertype: int, data: bytes) -> Iterator[Packet]:
        if ethertype == 0x0800:
            yield from self._ip(ts, data, 4)
        elif ethertype == 0x86DD:
            yield from self._ip(ts, data, 6)
        elif ethertype in (0x8100, 0x88A8, 0x9100):
            inner, off = _ether(data, -2)
            yield from self._ethertype(ts, inner, data[off:])
        elif ethertype in (0x8847, 0x8848):  # MPLS: pop labels to the bottom of the stack
            pos = 0
            while pos + 4 <= len(data) and not data[pos + 2] & 0x01:
                pos += 4
            yield from self._ip(ts, data[pos + 4 :], 0)
        elif ethertype == 0x8864 and len(data) >= 8:  # PPPoE session
            ppp = int.from_bytes(data[6:8], "big")
            yield from self._ip(ts, data[8:], 4 if ppp == 0x0021 else 6 if ppp == 0x0057 else -1)
        else:
            self.skipped["non_ip"] += 1

    # network layer ---------------------------------------------------
    def _ip(self, ts: int, data: bytes, version: int) -> Iterator[Packet]:
        if not data:
            raise _MalformedError("malformed")
        actual = data[0] >> 4
        if version <= 0:
            version = actual
        if version != actual:
            raise _MalformedError("malformed")
        if version == 4:
            yield from self._ipv4(ts, data)
        elif version == 6:
            yield from self._ipv6(ts, data)
        else:
            self.skipped["non_ip"] += 1

    def _ipv4(self, ts: int, data: bytes) -> Iterator[Packet]:
        ihl = (data[0] & 0x0F) * 4
        total = int.from_bytes(data[2:4], "big")
        if ihl < 20 or len(data) < ihl:
            raise _MalformedError("malformed")
        if total == 0:  # TSO captures leave it 0
            total = len(data)
        if total < ihl:
            raise _MalformedError("malformed")
        if len(data) < total:
            self.skipped["snaplen"] += 1
            return
        ident = int.from_bytes(data[4:6], "big")
        frag = int.from_bytes(data[6:8], "big")
        proto = data[9]
        src = _ip4(data[12:16])
        dst = _ip4(data[16:20])
        payload = data[ihl:total]
        more, offset = bool(frag & 0x2000), (frag & 0x1FFF) * 8
        if more or offset:
            whole = self._reassemble(("4", src, dst, ident, proto), offset, more, payload)
            if whole is None:
                return
            payload = whole
        yield from self._transport(ts, src, dst, proto, payload)

    def _ipv6(self, ts: int, data: bytes) -> Iterator[Packet]:
        if len(data) < 40:
            raise _MalformedError("malformed")
        plen = int.from_bytes(data[4:6], "big")
        nxt = data[6]
        src = _ip6(data[8:24])
        dst = _ip6(data[24:40])
        if len(data) < 40 + plen:
            self.skipped["snaplen"] += 1
            return
        body = data[40 : 40 + plen] if plen else data[40:]
        frag: tuple[int, bool, int] | None = None
        while nxt in (0, 43, 44, 51, 60):
            if len(body) < 8:
                raise _MalformedError("malformed")
            if nxt == 44:
                off_flags = int.from_bytes(body[2:4], "big")
                frag = (off_flags & 0xFFF8, bool(off_flags & 1), int.from_bytes(body[4:8], "big"))
                nxt, body = body[0], body[8:]
            elif nxt == 51:
                length = (body[1] + 2) * 4
                nxt, body = body[0], body[length:]
            else:
                length = (body[1] + 1) * 8
                nxt, body = body[0], body[length:]
        if frag is not None:
            offset, more, ident = frag
            if more or offset:
                whole = self._reassemble(("6", src, dst, ident), offset, more, body)
                if whole is None:
                    return
                body = whole
        yield from self._transport(ts, src, dst, nxt, body)

    def _reassemble(self, key: tuple[object, ...], offset: int, more: bool, data: bytes) -> bytes | None:
        entry = self._frags.get(key)
        if entry is None:
            if len(self._frags) >= _MAX_REASSEMBLIES:
                self._frags.pop(next(iter(self._frags)))
                self.skipped["fragment_evicted"] += 1
            entry = self._frags[key] = _Fragments()
        entry.parts[offset] = data
        if not more:
            entry.total = offset + len(data)
        whole = entry.complete()
        if whole is not None:
            del self._frags[key]
        return whole

    def _transport(self, ts: int, src: str, dst: str, proto: int, data: bytes) -> Iterator[Packet]:
        if proto == PROTO_UDP:
            if len(data) < 8:
                raise _MalformedError("malformed")
            sport, dport, ulen = struct.unpack_from("!HHH", data, 0)
            end = ulen if 8 <= ulen <= len(data) else len(data)
            if ulen > len(data):
                self.skipped["snaplen"] += 1
                return
            yield Packet(ts, src, sport, dst, dport, PROTO_UDP, data[8:end])
        elif proto == PROTO_TCP:
            yield from self._tcp(ts, src, dst, data)
        elif proto == PROTO_SCTP:
            yield from self._sctp(ts, src, dst, data)
        elif proto == 4:  # IPIP
            yield from self._ip(ts, data, 4)
        elif proto == 41:  # IPv6 in IP
            yield from self._ip(ts, data, 6)
        elif proto == 47:  # GRE
            yield from self._gre(ts, data)
        else:
            self.skipped["other_proto"] += 1

    def _gre(self, ts: int, data: bytes) -> Iterator[Packet]:
        flags, proto = struct.unpack_from("!HH", data, 0)
        off = 4 + (4 if flags & 0x8000 else 0) + (4 if flags & 0x2000 else 0) + (4 if flags & 0x1000 else 0)
        inner = data[off:]
        if proto == 0x88BE:  # ERSPAN I (no sequence bit) or II (8-byte header)
            inner = inner[8:] if flags & 0x1000 else inner
            ethertype, eoff = _ether(inner, 12)
            yield from self._ethertype(ts, ethertype, inner[eoff:])
        elif proto == 0x22EB:  # ERSPAN III: 12 bytes, plus 8 when the O bit says a subheader follows
            extra = 8 if len(inner) > 11 and inner[11] & 0x01 else 0
            inner = inner[12 + extra :]
            ethertype, eoff = _ether(inner, 12)
            yield from self._ethertype(ts, ethertype, inner[eoff:])
        elif proto == 0x6558:
            ethertype, eoff = _ether(inner, 12)
            yield from self._ethertype(ts, ethertype, inner[eoff:])
        else:
            yield from self._ethertype(ts, proto, inner)

    def _sctp(self, ts: int, src: str, dst: str, data: bytes) -> Iterator[Packet]:
        """SCTP DATA chunks; a user message fragmented over chunks (B ... E) is joined per stream."""
        sport, dport = struct.unpack_from("!HH", data, 0)
        pos = 12
        while pos + 4 <= len(data):
            ctype, cflags, clen = data[pos], data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
            if clen < 4:
                raise _MalformedError("malformed")
            if ctype == 0 and clen >= 16:
                stream = int.from_bytes(data[pos + 8 : pos + 10], "big")
                chunk = data[pos + 16 : pos + clen]
                key = (src, sport, dst, dport, stream)
                if cflags & 0x02:  # B: first fragment
                    self._sctp_parts[key] = bytearray()
                parts = self._sctp_parts.get(key)
                if parts is None:
                    self.skipped["sctp_fragment"] += 1
                elif len(parts) + len(chunk) > _MAX_TCP_BUFFER:
                    del self._sctp_parts[key]
                    self.skipped["sctp_fragment"] += 1
                else:
                    parts += chunk
                    if cflags & 0x01:  # E: last fragment
                        del self._sctp_parts[key]
                        yield Packet(ts, src, sport, dst, dport, PROTO_SCTP, bytes(parts))
            pos += (clen + 3) & ~3

    # TCP -------------------------------------------------------------
    def _tcp(self, ts: int, src: str, dst: str, data: bytes) -> Iterator[Packet]:
        sport, dport, seq = struct.unpack_from("!HHI", data, 0)
        hlen = (data[12] >> 4) * 4
        flags = data[13]
        if hlen < 20 or len(data) < hlen:
            raise _MalformedError("malformed")
        payload = data[hlen:]
        key = (src, sport, dst, dport)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = _Flow()
        if flags & 0x02:  # SYN
            flow.next_seq = (seq + 1) & 0xFFFFFFFF
            seq = flow.next_seq
        if flags & 0x04 and not payload:  # RST
            return
        if not payload:
            return
        if flow.next_seq is None:
            flow.next_seq = seq
        delta = _seq_delta(seq, flow.next_seq)
        if delta < 0:
            if -delta >= len(payload):
                self.skipped["tcp_retransmission"] += 1
                return
            payload = payload[-delta:]
            delta = 0
        if delta > 0:
            flow.pending[seq] = payload
            if len(flow.pending) > _MAX_TCP_PENDING:
                self._skip_gap(flow)
            else:
                return
        else:
            self._append(flow, payload)
        self._drain_pending(flow)
        for message in self._messages(flow):
            yield Packet(ts, src, sport, dst, dport, PROTO_TCP, message)

    def _append(self, flow: _Flow, payload: bytes) -> None:
        assert flow.next_seq is not None
        if flow.mode != "other":
            flow.buf += payload
        flow.next_seq = (flow.next_seq + len(payload)) & 0xFFFFFFFF

    def _drain_pending(self, flow: _Flow) -> None:
        progress = True
        while progress and flow.pending:
            progress = False
            for seq in list(flow.pending):
                assert flow.next_seq is not None
                delta = _seq_delta(seq, flow.next_seq)
                if delta > 0:
                    continue
                chunk = flow.pending.pop(seq)
                if -delta < len(chunk):
                    self._append(flow, chunk[-delta:])
                    progress = True
                else:
                    self.skipped["tcp_retransmission"] += 1

    def _skip_gap(self, flow: _Flow) -> None:
        """Bytes never captured: drop the partial message and resume at the next held segment."""
        assert flow.next_seq is not None
        base = flow.next_seq
        nearest = min(flow.pending, key=lambda s: _seq_delta(s, base))
        self.skipped["tcp_gap"] += 1
        flow.buf.clear()
        flow.ws_parts.clear()
        if flow.mode in ("sip", "hep", "ws"):
            flow.mode = "resync" if flow.mode == "sip" else flow.mode
        flow.next_seq = nearest

    def _finish_tcp(self) -> Iterator[Packet]:
        for (src, sport, dst, dport), flow in self._flows.items():
            while flow.pending:
                self._skip_gap(flow)
                self._drain_pending(flow)
                for message in self._messages(flow):
                    yield Packet(0, src, sport, dst, dport, PROTO_TCP, message)
            if flow.buf.strip(b"\r\n") and flow.mode != "other":
                self.skipped["tcp_incomplete"] += 1
        self._flows.clear()

    def _messages(self, flow: _Flow) -> Iterator[bytes]:
        buf = flow.buf
        while buf:
            if flow.mode == "other":
                buf.clear()
                return
            if flow.mode == "ws":
                message = _ws_frame(flow)
                if message is None:
                    return
                if message and looks_like_sip(message):
                    yield message
                continue
            if flow.mode in ("detect", "hep") and buf[:4] == b"HEP3":
                flow.mode = "hep"
                if len(buf) < 6:
                    return
                length = int.from_bytes(buf[4:6], "big")
                if length < 6:
                    flow.mode = "other"
                    self.skipped["tcp_not_sip"] += 1
                    continue
                if len(buf) < length:
                    return
                yield bytes(buf[:length])
                del buf[:length]
                continue
            stripped = len(buf) - len(buf.lstrip(b"\r\n"))
            if stripped:  # CRLF keep-alives between messages
                del buf[:stripped]
                continue
            if flow.mode == "resync":
                start = _find_sip_start(buf)
                if start < 0:
                    if len(buf) > _MAX_HEADER_BYTES:
                        del buf[: len(buf) - 2048]
                    return
                del buf[:start]
                flow.mode = "sip"
            end, sep = buf.find(b"\r\n\r\n"), 4
            lf_end = buf.find(b"\n\n", 0, end if end >= 0 else len(buf))
            if lf_end >= 0:  # bare LF line ends (seen in real captures)
                end, sep = lf_end, 2
            if end < 0:
                if len(buf) > _MAX_HEADER_BYTES or (len(buf) >= 16 and not _plausible_start(bytes(buf[:16]))):
                    flow.mode = "other"
                    self.skipped["tcp_not_sip"] += 1
                return
            head = bytes(buf[:end])
            size = end + sep + _content_length(head)
            if len(buf) < size:
                if size > _MAX_TCP_BUFFER:
                    flow.mode = "other"
                    self.skipped["tcp_not_sip"] += 1
                return
            message = bytes(buf[:size])
            del buf[:size]
            if looks_like_sip(message):
                flow.mode = "sip"
                yield message
            elif _is_ws_upgrade(head):
                flow.mode = "ws"
            elif flow.mode != "sip":
                flow.mode = "other"
                self.skipped["tcp_not_sip"] += 1
            else:
                self.skipped["tcp_not_sip"] += 1


@dataclass
class _Fragments:
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None

    def complete(self) -> bytes | None:
        if self.total is None:
            return None
        out = bytearray(self.total)
        covered = 0
        for offset in sorted(self.parts):
            if offset > covered:
                return None
            part = self.parts[offset]
            out[offset : offset + len(part)] = part
            covered = max(covered, offset + len(part))
        return bytes(out[: self.total]) if covered >= self.total else None


def _ether(data: bytes, type_offset: int) -> tuple[int, int]:
    """Ethertype at ``type_offset`` (-2: right after a VLAN tag's TCI) and the offset of what follows."""
    if type_offset < 0:
        return int.from_bytes(data[2:4], "big"), 4
    if len(data) < type_offset + 2:
        raise _MalformedError("malformed")
    return int.from_bytes(data[type_offset : type_offset + 2], "big"), type_offset + 2


def _ip4(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def _ip6(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))


def _seq_delta(seq: int, expected: int) -> int:
    """Signed distance from ``expected`` to ``seq`` in 32-bit sequence space."""
    d = (seq - expected) & 0xFFFFFFFF
    return d - (1 << 32) if d >= (1 << 31) else d


def _content_length(head: bytes) -> int:
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if text.isdigit() and len(text) <= 9:
                return int(text)
            return 0
    return 0


def _plausible_start(head: bytes) -> bool:
    """Could these first bytes begin a SIP or HTTP message?"""
    word = head.split(b" ", 1)[0].upper()
    return word in _SIP_METHODS or word.startswith((b"SIP/", b"HTTP/")) or word in (b"GET", b"POST", b"HEAD", b"PUT")


def _find_sip_start(buf: bytearray) -> int:
    """Offset of the first line in ``buf`` that starts a SIP message, or -1."""
    pos = 0
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return -1
        if looks_like_sip(bytes(buf[pos : end + 2])):
            return pos
        pos = end + 2


def _is_ws_upgrade(head: bytes) -> bool:
    lower = head.lower()
    return b"upgrade: websocket" in lower and (lower.startswith(b"get ") or lower.startswith(b"http/1.1 101"))


def _ws_frame(flow: _Flow) -> bytes | None:
    """Cut one WebSocket frame off the flow's buffer; a whole message's payload, b"" for others, None to wait."""
    buf = flow.buf
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    opcode, masked, length = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, pos = int.from_bytes(buf[2:4], "big"), 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, pos = int.from_bytes(buf[2:10], "big"), 10
    if length > _MAX_TCP_BUFFER:
        flow.mode = "other"
        return b""
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key, pos = bytes(buf[pos : pos + 4]), pos + 4
    if len(buf) < pos + length:
        return None
    payload = bytes(buf[pos : pos + length])
    del buf[: pos + length]
    if key:
        mask = (key * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")
    if opcode in (0, 1, 2):
        flow.ws_parts += payload
        if b0 & 0x80:  # FIN
            message = bytes(flow.ws_parts)
            flow.ws_parts.clear()
            return message
    return b""


def read_packets(fh: BinaryIO) -> Iterator[Packet]:
    """Shorthand for ``iter(PcapReader(fh))``."""
    return iter(PcapReader(fh))
