"""Which trunk a leg went through, and how it ended: the per-trunk call counts behind ASR and NER.

A trunk is an OPTIONS target of kind ``trunk`` (``collectors.options.targets``) whose host
is an IP literal; a leg belongs to it when any copy of its INVITE (any hop a node
captured: caller to proxy, proxy to carrier) came from or went to that IP.
Names are not resolved here (the processor must not depend on DNS); several trunks on one
IP (different ports) are told apart only by IP, so the first configured one wins.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from collectors.options.config import OptionsConfig
from processors.call_legs.correlator import FINAL_STATES, LegRow

#: ``callscope_trunk_calls_total{result}`` values. ASR = answered / all; NER counts busy and
#: no_answer as effective too (the network delivered the call; the user did not take it).
RESULTS = ("answered", "busy", "no_answer", "cancelled", "failed")
_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480})


def trunk_ips(options: OptionsConfig) -> dict[str, str]:
    """IP (normalised text) -> trunk name, for the trunk targets given by IP."""
    out: dict[str, str] = {}
    for target in options.targets:
        if target.kind != "trunk":
            continue
        try:
            ip = str(ipaddress.ip_address(target.sip.host))
        except ValueError:
            continue
        out.setdefault(ip, target.name)
    return out


def outcome(row: LegRow) -> str:
    """The result label of a closed leg."""
    if row.answered_at is not None or 200 <= row.status < 300:
        return "answered"
    if row.state == "cancelled" or row.status == 487:
        return "cancelled"
    if row.status in _BUSY:
        return "busy"
    if row.status in _NO_ANSWER:
        return "no_answer"
    return "failed"


class TrunkCounter:
    """Counts each closed leg once per process against the trunk its INVITE crossed."""

    def __init__(self, trunks: dict[str, str], remember: int = 100_000) -> None:
        self.trunks = trunks
        self._remember = remember
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._legs: OrderedDict[str, str] = OrderedDict()  # leg_id -> trunk, from INVITE hops

    def invite(self, leg_id: str, src_ip: str, dst_ip: str) -> None:
        """An INVITE hop of a leg: remember the trunk when one end of the hop is a trunk."""
        trunk = self.trunks.get(dst_ip) or self.trunks.get(src_ip)
        if trunk is not None and leg_id not in self._legs:
            self._legs[leg_id] = trunk
            if len(self._legs) > self._remember:
                self._legs.popitem(last=False)

    def seen(self, leg_id: str) -> None:
        """A leg already closed before this process started (reloaded): never counted again."""
        self._counted[leg_id] = None
        if len(self._counted) > self._remember:
            self._counted.popitem(last=False)

    def closed(self, row: LegRow) -> tuple[str, str] | None:
        """(trunk, result) the first time a trunk leg is seen closed, else None."""
        if not self.trunks or row.state not in FINAL_STATES or row.leg_id in self._counted:
            return None
        trunk = self._legs.pop(row.leg_id, None) or self.trunks.get(row.dst_ip) or self.trunks.get(row.src_ip)
        if trunk is None:
            return None
        self.seen(row.leg_id)
        return trunk, outcome(row)
