"""Response models of the Asterisk side of ``GET /api/v1/calls/{call_id}`` (see :mod:`api.trace_asterisk`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class AsteriskLeg(BaseModel):
    """One Asterisk channel on one node: an ``asterisk_legs`` row (see schemas/migrations/0008)."""

    leg_id: str
    node: str
    uniqueid: str
    linkedid: str
    linkedids: list[str]
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
    bridged_with: list[str]
    connected_to: list[str]
    sip_call_id: str
    incomplete: bool
    sources: list[str]
    version: int
    updated_at: datetime


class AsteriskCall(BaseModel):
    """The channels of one linkedid on one node: an ``asterisk_calls`` row."""

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
    uniqueids: list[str]
    transfers: list[str]
    sip_call_ids: list[str]
    merged_into: str
    incomplete: bool
    version: int
    updated_at: datetime


class AsteriskTransfer(BaseModel):
    """A transfer, pickup or masquerade: an ``asterisk_transfers`` row."""

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


class AsteriskEvent(BaseModel):
    """One raw AMI or CEL event of the call (``ami_events``/``cel``), with every field as received."""

    source: Literal["ami", "cel"]
    id: str
    node: str
    ts: datetime
    event: str
    linkedid: str
    uniqueid: str
    channel: str
    fields: dict[str, str]


def pick(model: type[BaseModel], row: dict[str, Any]) -> dict[str, Any]:
    """The model's fields of a table row (rows carry more columns than a response shows)."""
    return {name: row[name] for name in model.model_fields}
