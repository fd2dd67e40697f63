"""The rows processors/asterisk_calls writes: one dataclass per table, fields in ``schemas.tables.COLUMNS`` order."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


def _values(row: Any) -> tuple[Any, ...]:
    return tuple(list(v) if type(v) is tuple else v for v in (getattr(row, f.name) for f in fields(row)))


@dataclass(frozen=True, slots=True)
class LegRow:
    """One version of an ``asterisk_legs`` row."""

    id: str
    leg_id: str
    node: str
    uniqueid: str
    linkedid: str
    linkedids: tuple[str, ...]
    channel: str
    tech: str
    direction: str
    caller_num: str
    caller_name: str
    connected_num: str
    connected_name: str
    callee: str
    context: str
    exten: str
    dialed_by: str
    dial_string: str
    dial_status: str
    forwarded_to: str
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    bridged_at: datetime | None
    ended_at: datetime | None
    duration_secs: float | None
    bridged_secs: float | None
    hangup_cause: int | None
    hangup_cause_text: str
    outcome: str
    state: str
    bridged_with: tuple[str, ...]
    connected_to: tuple[str, ...]
    sip_call_id: str
    incomplete: bool
    sources: tuple[str, ...]
    created: datetime
    version: int
    updated_at: datetime

    def values(self) -> tuple[Any, ...]:
        return _values(self)


@dataclass(frozen=True, slots=True)
class CallRow:
    """One version of an ``asterisk_calls`` row."""

    id: str
    node: str
    linkedid: str
    caller_channel: str
    caller_num: str
    caller_name: str
    callee: str
    started_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    duration_secs: float | None
    wait_secs: float | None
    talk_secs: float | None
    state: str
    outcome: str
    hangup_cause: int | None
    hangup_cause_text: str
    channels: int
    uniqueids: tuple[str, ...]
    transfers: tuple[str, ...]
    sip_call_ids: tuple[str, ...]
    merged_into: str
    incomplete: bool
    created: datetime
    version: int
    updated_at: datetime
    checkpoint: str

    def values(self) -> tuple[Any, ...]:
        return _values(self)


@dataclass(frozen=True, slots=True)
class TransferRow:
    """One version of an ``asterisk_transfers`` row."""

    id: str
    transfer_id: str
    node: str
    linkedid: str
    ts: datetime
    kind: str
    result: str
    transferer_channel: str
    transferer_uniqueid: str
    transferee_channel: str
    transferee_uniqueid: str
    target_channel: str
    target_uniqueid: str
    target_exten: str
    second_linkedid: str
    is_external: bool
    source: str
    event_id: str
    version: int

    def values(self) -> tuple[Any, ...]:
        return _values(self)
