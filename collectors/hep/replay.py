"""Replay formats of the HEP collector: captures and raw HEP files through the live path.

- ``pcap``: pcap and pcapng files (sniffed by magic). Every SIP message found (UDP, TCP,
  SCTP, WebSocket) becomes a :class:`~collectors.hep.decode.HepPacket` with the captured
  addresses, ports and time, and goes through :func:`collectors.hep.events.envelope_from_hep`
  exactly as a packet from a live agent does. HEP found inside UDP (or a TCP stream) is
  decoded as HEP. Other traffic (RTP, DNS, HTTP) is skipped.
- ``hep``: a file of concatenated raw HEP3 packets (what a HEP agent sends over TCP), sniffed
  by ``HEP3``; a single HEPv1/v2 packet file is accepted when named with ``--format hep``.

Packets that carry no node (no capture id known to the topology) are stamped with the
``--node`` name. The receive time of a replayed packet is its capture time, so replaying
the same file twice gives the same envelopes (and the same event ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from callscope.settings import NodeConfig, TopologyConfig
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepError, HepPacket, decode, frame_stream, resync
from collectors.hep.events import envelope_from_hep
from collectors.hep.pcap import PcapError, PcapReader, hep_version, is_capture, looks_like_sip
from schemas.envelope import ROLES
from schemas.errors import DecodeError

if TYPE_CHECKING:
    from callscope.formats import Item

_MAX_HEP_FILE = 512 * 1024 * 1024


def _item(
    envelope: bytes | None,
    *,
    kind: str | None = None,
    key: str = "",
    raw: bytes = b"",
    error: DecodeError | None = None,
) -> Item:
    # callscope.formats registers these formats, so it is imported here, not at the top.
    from callscope.formats import Item

    return Item(envelope, kind=kind, key=key, raw=raw, error=error)


def _topology(node: str, role: str) -> TopologyConfig:
    """A topology in which ``node`` has ``role`` (so envelopes carry the replaying node's role)."""
    if role not in ROLES:
        return TopologyConfig()
    try:
        return TopologyConfig(nodes=(NodeConfig(name=node, role=role),))
    except ValueError:
        return TopologyConfig()


def _envelope(pkt: HepPacket, raw: bytes, *, node: str, topology: TopologyConfig, hep: HepConfig) -> Item | None:
    """The Item for one decoded packet; None for a keep-alive."""
    if pkt.keepalive:
        return None
    try:
        kind, key, envelope = envelope_from_hep(
            pkt, topology=topology, hep=hep, received_us=pkt.ts_us, collector_node=node
        )
    except DecodeError as exc:
        return _item(None, raw=raw, error=exc)
    return _item(envelope, kind=kind, key=key, raw=raw)


class PcapFormat:
    """pcap / pcapng captures (SIP over UDP, TCP, SCTP, WebSocket; HEP inside UDP)."""

    name = "pcap"
    description = "pcap or pcapng capture: SIP over UDP/TCP/SCTP/WebSocket, HEP inside UDP"

    def __init__(self, hep: HepConfig | None = None) -> None:
        self.hep = hep or HepConfig()
        self.skipped: dict[str, int] = {}  # what the last read left out, by reason

    def sniff(self, head: bytes) -> bool:
        return is_capture(head)

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]:
        topology = _topology(node, role)
        with path.open("rb") as fh:
            reader = PcapReader(fh)
            try:
                for captured in reader:
                    payload = captured.payload
                    if hep_version(payload) is not None:
                        try:
                            pkt = decode(payload)
                        except HepError as exc:
                            yield _item(None, raw=payload, error=exc)
                            continue
                        if not pkt.ts_sec and not pkt.ts_usec:  # HEPv1: stamp the capture time
                            pkt.ts_sec, pkt.ts_usec = divmod(captured.ts_us, 1_000_000)
                    elif looks_like_sip(payload):
                        sec, usec = divmod(captured.ts_us, 1_000_000)
                        pkt = HepPacket(
                            version=3,
                            family=10 if ":" in captured.src_ip else 2,
                            protocol=captured.ip_proto,
                            src_ip=captured.src_ip,
                            src_port=captured.src_port,
                            dst_ip=captured.dst_ip,
                            dst_port=captured.dst_port,
                            ts_sec=sec,
                            ts_usec=usec,
                            payload_type=1,
                            payload=payload,
                        )  # no raw: the event id comes from the encoded packet (addresses, ports, time)
                    else:
                        continue  # RTP, DNS, ... : not ours
                    item = _envelope(pkt, payload, node=node, topology=topology, hep=self.hep)
                    if item is not None:
                        yield item
            except PcapError as exc:
                yield _item(None, raw=b"", error=exc)
            finally:
                self.skipped = dict(reader.skipped)


class HepFileFormat:
    """Concatenated raw HEP3 packets (a HEP agent's TCP stream saved to a file)."""

    name = "hep"
    description = "raw HEP packets: concatenated HEP3, or one HEPv1/v2 packet"

    def __init__(self, hep: HepConfig | None = None) -> None:
        self.hep = hep or HepConfig()

    def sniff(self, head: bytes) -> bool:
        return head[:4] == b"HEP3" and len(head) >= 6 and int.from_bytes(head[4:6], "big") >= 6

    def read(self, path: Path, *, node: str, role: str) -> Iterator[Item]:
        topology = _topology(node, role)
        size = path.stat().st_size
        if size > _MAX_HEP_FILE:
            yield _item(None, error=HepError(f"{path.name}: {size} bytes is too large a HEP file", reason="length"))
            return
        buf = bytearray(path.read_bytes())
        if buf[:4] != b"HEP3":
            yield from self._one(bytes(buf), node, topology)
            return
        while buf:
            try:
                packets = frame_stream(buf)
            except HepError as exc:
                head = bytes(buf[:256])
                skipped = resync(buf)
                if not skipped:  # nothing more to find
                    buf.clear()
                yield _item(None, raw=head, error=exc)
                continue
            for raw in packets:
                yield from self._one(raw, node, topology)
            if not packets:  # a partial packet at the end (or one whose declared length runs past it)
                yield from self._one(bytes(buf), node, topology)
                buf.clear()

    def _one(self, raw: bytes, node: str, topology: TopologyConfig) -> Iterator[Item]:
        try:
            pkt = decode(raw)
        except HepError as exc:
            yield _item(None, raw=raw[:4096], error=exc)
            return
        item = _envelope(pkt, raw, node=node, topology=topology, hep=self.hep)
        if item is not None:
            yield item
