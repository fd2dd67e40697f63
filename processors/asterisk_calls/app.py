"""I/O shell of the asterisk_calls processor: ``callscope.ami``, ``callscope.cel`` and ``callscope.cdr`` (its own
group) into ``asterisk_legs``, ``asterisk_calls``, ``asterisk_transfers`` and ``call_links``.

Delivery as :mod:`processors.call_legs.app` (shared shell): rows are written, coalesced per
leg/call/transfer/link per flush, before the offsets of the records that produced them
are committed.

Restart: before consuming, every call still live updated within ``reload_hours``, and
every call closed within ``final_linger_secs``, is read from ``asterisk_calls FINAL`` and
restored from its ``checkpoint`` (the call, its channels and transfers), so events read
again after a crash change nothing and newer ones continue the call. A call the
processor never saw start (it was down, or the call began before the first start) is
built from the events that come: its channels are ``incomplete``.

Several processes: a channel whose linkedid changes (a pickup, an attended transfer) has
its later AMI events keyed by the new linkedid, possibly on another partition; each
process writes what it saw of it, the newest version wins (docs/asterisk.md).

Timeouts run from a periodic ``expire(now)`` with the wall clock, here only. What the
core could not read is counted in ``callscope_errors_total{component="asterisk_calls"}``
with a bounded reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson

from callscope.bus.base import Bus, Record
from callscope.settings import ProcessorConfig, StoreConfig
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from processors.asterisk_calls.ami import HANDLERS
from processors.asterisk_calls.config import AsteriskCallsConfig
from processors.asterisk_calls.correlator import AsteriskCorrelator, Output
from processors.asterisk_calls.rows import CallRow, LegRow, TransferRow
from processors.call_legs.app import CorrelatingShell, PendingRow, utc_now
from schemas.topics import topic_for
from schemas.wire import Decoded

NAME = "asterisk_calls"
_AMI = topic_for("ami")
_EVENT = b'"event":"'

_RELOAD_SQL = (
    "SELECT node, linkedid, version, checkpoint FROM asterisk_calls FINAL"
    " WHERE (state = 'live' AND updated_at >= {now:DateTime64(6, 'UTC')} - toIntervalSecond({window:UInt32}))"
    " OR (state != 'live' AND updated_at >= {now:DateTime64(6, 'UTC')} - toIntervalSecond({linger:UInt32}))"
)


def pending_rows(outputs: Sequence[Output]) -> list[PendingRow]:
    """Rows for the shared shell, coalesced per leg, call, transfer and link."""
    out: list[PendingRow] = []
    for o in outputs:
        if isinstance(o, LegRow):
            out.append(("asterisk_legs", o.leg_id, o.values()))
        elif isinstance(o, CallRow):
            out.append(("asterisk_calls", f"{o.node}/{o.linkedid}", o.values()))
        elif isinstance(o, TransferRow):
            out.append(("asterisk_transfers", o.transfer_id, o.values()))
        else:
            out.append(("call_links", o.id, o.values()))
    return out


def ami_wants(value: bytes) -> bool:
    """An AMI event this processor reads (by its ``"event":"`` field, found without parsing the envelope).

    Envelopes on the bus are :func:`schemas.envelope.encode`'s output (orjson, no spaces); a false
    positive is harmless (the envelope is validated and the event name checked again).
    """
    at = value.find(_EVENT)
    if at < 0:
        return True  # not the canonical encoding: let the validation decide
    start = at + len(_EVENT)
    end = value.find(b'"', start)
    return value[start:end].decode("utf-8", "replace") in HANDLERS


class AsteriskCallsProcessor(CorrelatingShell):
    """AMI, CEL and CDR events into Asterisk legs, calls, transfers and SIP Call-ID links."""

    name = NAME
    topics = (_AMI, topic_for("cel"), topic_for("cdr"))
    tables = ("asterisk_legs", "asterisk_calls", "asterisk_transfers", "call_links")

    def __init__(
        self,
        config: ProcessorConfig,
        store_config: StoreConfig,
        bus: Bus,
        store: Store,
        telemetry: Telemetry,
        *,
        node: str,
        asterisk: AsteriskCallsConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.asterisk_config = asterisk or AsteriskCallsConfig()
        super().__init__(
            config,
            store_config,
            bus,
            store,
            telemetry,
            node=node,
            clock=clock,
            wall=wall,
            expire_interval_secs=self.asterisk_config.expire_interval_secs,
        )
        self.correlator = AsteriskCorrelator(self.asterisk_config)

    async def _reload(self) -> None:
        cfg = self.asterisk_config
        rows = await asyncio.to_thread(
            self._store.query,
            _RELOAD_SQL,
            {
                "now": self._wall(),
                "window": int(cfg.reload_hours * 3600),
                "linger": int(cfg.final_linger_secs) + 60,
            },
        )
        restored = 0
        for row in rows:
            try:
                self.correlator.restore(str(row["checkpoint"]))
                restored += 1
            except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
                self._telemetry.errors.labels(self.name, "checkpoint").inc()
                self._log.warning("checkpoint not restored", node=row["node"], linkedid=row["linkedid"], error=str(exc))
        if restored:
            self._log.info("calls reloaded", calls=restored)

    def _wants(self, topic: str, value: bytes, record: Record | None) -> bool:
        return topic != _AMI or ami_wants(value)

    def _feed(self, env: Decoded) -> list[PendingRow]:
        rows = pending_rows(self.correlator.feed(env))
        self._count_problems()
        return rows

    def _expire(self, now: datetime) -> list[PendingRow]:
        rows = pending_rows(self.correlator.expire(now))
        self._count_problems()
        return rows

    def _count_problems(self) -> None:
        if self.correlator.problems:
            for reason, count in self.correlator.take_problems().items():
                self._telemetry.errors.labels(self.name, reason).inc(count)


__all__ = ["NAME", "AsteriskCallsProcessor", "ami_wants", "pending_rows"]
