"""schemas.tables: every kind's envelope becomes a row of its raw table, and reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from callscope.store.client import Store
from schemas.envelope import KINDS, encode, validate
from schemas.tables import COLUMNS, DEADLETTERS, TABLES, deadletter_row, micros, row_for, row_from_dict
from tests.samples import sample_envelope

ALL_TABLES = (*TABLES.values(), DEADLETTERS)


def test_every_kind_has_a_table_and_columns() -> None:
    assert set(TABLES) == set(KINDS)
    assert set(ALL_TABLES) <= set(COLUMNS)  # raw tables; processors add theirs


def test_columns_match_the_migrated_tables(migrated_store: Store) -> None:
    for table in ALL_TABLES:
        rows = migrated_store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " AND default_kind = '' ORDER BY position",
            {"db": migrated_store.database, "t": table},
        )
        assert tuple(r["name"] for r in rows) == COLUMNS[table], table


@pytest.mark.parametrize("kind", KINDS)
def test_row_for_model_and_row_from_dict_agree(kind: str) -> None:
    env = validate(sample_envelope(kind))
    table, row = row_for(env)
    table2, row2 = row_from_dict(kind, orjson.loads(encode(env)))
    assert table == table2 == TABLES[kind]
    assert len(row) == len(COLUMNS[table])
    assert row[:6] == row2[:6]
    assert orjson.loads(row[6]) == orjson.loads(row2[6])
    assert row[7:] == row2[7:]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_inserts_and_reads_back(migrated_store: Store, kind: str) -> None:
    doc = sample_envelope(kind, id=f"{kind}-roundtrip")
    env = validate(doc)
    table, row = row_for(env)
    migrated_store.insert(table, [row], COLUMNS[table])

    got = migrated_store.query(f"SELECT * FROM {table} WHERE id = {{id:String}}", {"id": env.id})
    assert len(got) == 1
    stored = got[0]
    assert stored["id"] == env.id
    assert stored["node"] == env.node
    assert stored["role"] == env.role
    assert stored["key"] == env.key
    assert stored["ts"] == env.ts == datetime(2024, 3, 1, 10, 0, 0, 1, tzinfo=UTC)
    assert stored["received"] == env.received
    body: dict[str, Any] = orjson.loads(stored["body"])
    expected_body = env.body.model_dump(mode="json")
    if kind == "sip":
        assert stored["raw"] == expected_body.pop("raw")  # stored once, in its own column
    assert body == expected_body
    for column, value in zip(COLUMNS[table][7:], row[7:], strict=True):
        assert stored[column] == value, column


def test_typed_columns_pick_the_main_query_fields() -> None:
    _, sip = row_from_dict("sip", sample_envelope("sip"))
    cols = dict(zip(COLUMNS["sip_messages"], sip, strict=True))
    assert cols["call_id"] == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (cols["method"], cols["status"], cols["cseq"]) == ("INVITE", 0, 314159)
    assert (cols["src_ip"], cols["src_port"], cols["dst_ip"], cols["dst_port"]) == ("10.0.0.1", 5060, "10.0.0.2", 5060)
    assert "raw" not in orjson.loads(cols["body"])

    ami = sample_envelope("ami")
    ami["body"]["fields"] = {"LinkedID": "1.1", "uniqueid": "1.2", "Channel": "PJSIP/100-1"}  # spellings vary
    _, row = row_from_dict("ami", ami)
    assert dict(zip(COLUMNS["ami_events"], row, strict=True))["linkedid"] == "1.1"
    assert row[-3:] == ("1.1", "1.2", "PJSIP/100-1")

    _, ql = row_from_dict("queue_log", sample_envelope("queue_log"))
    assert ql[-5:] == ("", "100", "1", "", "")

    probe = sample_envelope("options")
    probe["body"].update(status=None, rtt_ms=None, error="timeout")
    _, row = row_from_dict("options", probe)
    cols = dict(zip(COLUMNS["options_probes"], row, strict=True))
    assert (cols["status"], cols["rtt_ms"], cols["error"]) == (0, None, "timeout")


def test_old_events_outlive_a_ttl_merge(migrated_store: Store) -> None:
    # Events from 2024 (replays, backfills) with a 30-day TTL: retention counts from storage.
    assert migrated_store.config.ttl_days == 30
    for kind in KINDS:
        table, row = row_from_dict(kind, sample_envelope(kind))
        migrated_store.insert(table, [row], COLUMNS[table])
        migrated_store.command(f"OPTIMIZE TABLE {table} FINAL")
        assert migrated_store.query(f"SELECT count() AS n FROM {table}") == [{"n": 1}], table


def test_deadletter_keeps_the_raw_bytes(migrated_store: Store) -> None:
    raw = b"\xff\xfeHEP3\x00garbage"
    table, row = deadletter_row(
        component="hep",
        reason="truncated",
        detail="chunk length past the packet",
        node="sbc1",
        raw=raw,
        received="2024-03-01T10:00:00.000500Z",
        source_topic=None,
    )
    assert table == DEADLETTERS
    again = deadletter_row(
        component="hep",
        reason="truncated",
        detail="chunk length past the packet",
        node="sbc1",
        raw=raw,
        received=datetime(2024, 3, 1, 10, 0, 0, 500, tzinfo=UTC),
    )[1]
    assert again[0] == row[0]  # same record, same id
    migrated_store.insert(table, [row], COLUMNS[table])
    got = migrated_store.query("SELECT component, reason, hex(raw) AS raw_hex, source_topic FROM deadletters")
    assert got == [{"component": "hep", "reason": "truncated", "raw_hex": raw.hex().upper(), "source_topic": ""}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10:00:00.000001Z", 1_709_287_200_000_001),
        ("2024-03-01T10:00:59.999999Z", 1_709_287_259_999_999),
        ("2024-03-01T11:00:00.5+01:00", 1_709_287_200_500_000),
        (datetime(2024, 3, 1, 10, 0, 0, 1), 1_709_287_200_000_001),  # naive is UTC
        (1_709_287_200_000_001, 1_709_287_200_000_001),
    ],
)
def test_micros(value: Any, expected: int) -> None:
    assert micros(value) == expected


def test_micros_rejects_garbage() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        micros("2024-13-01T10:00:00.000001Z")
    with pytest.raises(TypeError):
        micros(1.5)
