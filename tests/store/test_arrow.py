"""The C row converter (callscope/store/_arrow.c) builds exactly the tables pyarrow builds.

``to_arrow`` against ``to_arrow_pure`` (pyarrow's own conversion): on the rows the processors
write (``sip_messages`` from generated traffic, ``call_legs`` from the correlator), on
hypothesis-built rows over every column type the converter writes, with nulls, edge values and
values it leaves to pyarrow (other types, ints out of range, datetimes in other zones, lone
surrogates ...), row- and column-oriented. Equal means: both None (pyarrow refuses), or equal
tables with equal schemas.

Outside CI the tests skip when the extension is not built; with ``CI=true`` they fail.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import call_legs as call_legs_bench
from callscope.store import arrow
from callscope.store.arrow import specs_for, to_arrow, to_arrow_pure
from callscope.store.client import Store
from processors.call_legs.app import leg_rows
from processors.call_legs.correlator import LegCorrelator
from schemas.tables import COLUMNS, row_for
from tests.ci import unavailable

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def _native() -> None:
    if arrow.native is None:
        unavailable("the C row converter is not built (python hatch_build.py)")


def same(schema: Any, data: Any, column_oriented: bool = False) -> Any:
    """Assert both conversions agree; return the table (None when pyarrow refuses)."""
    ours = to_arrow(schema, data, column_oriented)
    theirs = to_arrow_pure(schema, data, column_oriented)
    if theirs is None:
        assert ours is None
        return None
    assert ours is not None
    assert ours.schema.equals(theirs.schema)
    assert ours.equals(theirs), (ours.to_pylist()[:3], theirs.to_pylist()[:3])
    return ours


def native_takes(schema: Any, data: Any, column_oriented: bool = False) -> bool:
    specs = specs_for(schema)
    assert specs is not None
    return arrow.native.columns(data, specs, column_oriented) is not None  # type: ignore[union-attr]


def columns_of(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]


# -- the processors' rows ------------------------------------------------------------------


@pytest.fixture(scope="module")
def envelopes() -> list[Any]:
    return call_legs_bench.envelopes(3_500)


def schema_of(store: Store, table: str) -> Any:
    names = list(COLUMNS[table])
    schema = store._arrow_schema(table, names, store._load_wire_types(table))
    assert schema is not None
    return schema


def test_sip_messages_rows(migrated_store: Store, envelopes: list[Any]) -> None:
    schema = schema_of(migrated_store, "sip_messages")
    rows = [row_for(env)[1] for env in envelopes]
    assert native_takes(schema, rows)
    table = same(schema, rows)
    assert table.num_rows == len(rows)
    assert table.column("raw").to_pylist()[0] == rows[0][COLUMNS["sip_messages"].index("raw")].encode()
    same(schema, columns_of(rows), column_oriented=True)


def test_call_legs_rows(migrated_store: Store, envelopes: list[Any]) -> None:
    schema = schema_of(migrated_store, "call_legs")
    correlator = LegCorrelator()
    rows: list[tuple[Any, ...]] = []
    for i, env in enumerate(envelopes):
        correlator.touch(env)
        if i % 500 == 499:
            rows += [values for _, _, values in leg_rows(correlator.rows())]
    rows += [values for _, _, values in leg_rows(correlator.expire(datetime(2100, 1, 1, tzinfo=UTC)))]
    assert any(r[COLUMNS["call_legs"].index("answered_at")] is None for r in rows)  # nulls
    assert any(r[COLUMNS["call_legs"].index("ended_at")] is not None for r in rows)
    assert native_takes(schema, rows)
    assert same(schema, rows).num_rows == len(rows)
    same(schema, columns_of(rows), column_oriented=True)


def first_legs(envelopes: list[Any], messages: int) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The leg rows of the first ``messages`` envelopes, and their values as the call_legs processor writes them."""
    correlator = LegCorrelator()
    for env in envelopes[:messages]:
        correlator.touch(env)
    legs = correlator.rows()
    return legs, [values for _, _, values in leg_rows(legs)]


def test_inserted_through_the_converter_reads_back(migrated_store: Store, envelopes: list[Any]) -> None:
    legs, rows = first_legs(envelopes, 700)
    names = list(COLUMNS["call_legs"])
    assert native_takes(schema_of(migrated_store, "call_legs"), rows)
    assert migrated_store.insert("call_legs", rows, names, dedup_token="arrow-c") == len(rows)
    got = {
        r["id"]: r
        for r in migrated_store.query(
            "SELECT id, started_at, ringing_at, answered_at, pdd_ms, duration_secs, nodes, codecs, status"
            " FROM call_legs"
        )
    }
    assert len(got) == len(legs)
    for leg in legs:
        r = got[leg.id]
        assert (r["started_at"], r["ringing_at"], r["answered_at"]) == (leg.started_at, leg.ringing_at, leg.answered_at)
        assert (r["pdd_ms"], r["duration_secs"], r["status"]) == (leg.pdd_ms, leg.duration_secs, leg.status)
        assert (tuple(r["nodes"]), tuple(r["codecs"])) == (leg.nodes, leg.codecs)


# -- every type, generated -----------------------------------------------------------------

INTS = {
    pa.int8(): (-(2**7), 2**7 - 1),
    pa.int16(): (-(2**15), 2**15 - 1),
    pa.int32(): (-(2**31), 2**31 - 1),
    pa.int64(): (-(2**63), 2**63 - 1),
    pa.uint8(): (0, 2**8 - 1),
    pa.uint16(): (0, 2**16 - 1),
    pa.uint32(): (0, 2**32 - 1),
    pa.uint64(): (0, 2**64 - 1),
}
TIMESTAMPS = [pa.timestamp(unit, tz="UTC") for unit in ("s", "ms", "us", "ns")]
SCALARS = [pa.binary(), pa.bool_(), pa.float64(), *INTS, *TIMESTAMPS]

text = st.text(st.characters(codec="utf-8"), max_size=40)  # no lone surrogates
naive = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2262, 4, 11))


def supported(t: Any) -> st.SearchStrategy[Any]:
    """Values the converter writes itself for a column of type ``t``."""
    if t == pa.binary():
        return text | st.binary(max_size=40)
    if t == pa.bool_():
        return st.booleans()
    if t == pa.float64():
        return st.floats(allow_nan=False) | st.integers(-(2**53), 2**53)
    if t in INTS:
        lo, hi = INTS[t]
        return st.integers(lo, hi) | st.sampled_from([lo, hi, 0])
    if pa.types.is_timestamp(t):
        ints = st.integers(-(2**62), 2**62)
        if t.unit in ("us", "ns"):
            return ints | naive | naive.map(lambda d: d.replace(tzinfo=UTC))
        return ints
    raise AssertionError(t)


class Text(str):
    pass


def unsupported(t: Any) -> st.SearchStrategy[Any]:
    """Values left to pyarrow (it converts some, refuses others)."""
    common = st.sampled_from([1.5, "7", b"x", Text("sub"), [1], object()])
    if t == pa.binary():
        return common | st.just("lone \ud800 surrogate") | st.just(bytearray(b"ba"))
    if t in INTS:
        lo, hi = INTS[t]
        return common | st.sampled_from([lo - 1, hi + 1, True, 2**70, -(2**70)])
    if t == pa.float64():
        return common | st.sampled_from([2**53 + 1, -(2**53) - 1, 2**70, True])
    if pa.types.is_timestamp(t):
        zones = [timezone(timedelta(hours=2)), zoneinfo.ZoneInfo("Europe/Paris"), zoneinfo.ZoneInfo("UTC")]
        zoned = st.builds(lambda d, z: d.replace(tzinfo=z), naive, st.sampled_from(zones))
        return common | st.sampled_from([2**63, -(2**63) - 1]) | zoned
    return common | st.sampled_from([0, 1, None if t == pa.bool_() else 1.0])


def value(t: Any, *, refused: bool, is_list: bool) -> st.SearchStrategy[Any]:
    scalar = supported(t) | unsupported(t) if refused else supported(t)
    if is_list:
        items = st.lists(scalar, max_size=4)
        lists = items | items.map(tuple)
        if refused:
            lists = lists | st.lists(st.none() | scalar, min_size=1, max_size=3) | scalar
        return st.none() | lists
    return st.none() | scalar


@st.composite
def batches(draw: st.DrawFn, refused: bool) -> tuple[Any, list[tuple[Any, ...]]]:
    chosen = draw(st.lists(st.tuples(st.sampled_from(SCALARS), st.booleans()), min_size=1, max_size=6))
    schema = pa.schema([pa.field(f"c{i}", pa.list_(t) if is_list else t) for i, (t, is_list) in enumerate(chosen)])
    row = st.tuples(*(value(t, refused=refused, is_list=is_list) for t, is_list in chosen))
    return schema, draw(st.lists(row, max_size=20))


@FUZZ
@given(batches(refused=False))
def test_generated_rows_the_converter_writes(batch: tuple[Any, list[tuple[Any, ...]]]) -> None:
    schema, rows = batch
    assert native_takes(schema, rows)
    same(schema, rows)
    if rows:
        assert native_takes(schema, columns_of(rows), column_oriented=True)
        same(schema, columns_of(rows), column_oriented=True)


@FUZZ
@given(batches(refused=True))
def test_generated_rows_with_values_left_to_pyarrow(batch: tuple[Any, list[tuple[Any, ...]]]) -> None:
    schema, rows = batch
    same(schema, rows)
    if rows:
        same(schema, columns_of(rows), column_oriented=True)


# -- edges ---------------------------------------------------------------------------------


def test_edge_values() -> None:
    schema = pa.schema(
        [
            pa.field("s", pa.binary()),
            pa.field("u64", pa.uint64()),
            pa.field("i8", pa.int8()),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("ns", pa.timestamp("ns", tz="UTC")),
            pa.field("tags", pa.list_(pa.binary())),
            pa.field("b", pa.bool_()),
        ]
    )
    rows = [
        ("", 0, -128, datetime(1, 1, 1), 0, [], False),
        ("é€😀", 2**64 - 1, 127, datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -1, ("a", b"\x00"), True),
        (None, None, None, None, None, None, None),
        ("x" * 100_000, 1, 0, datetime(1969, 12, 31, 23, 59, 59, 1), datetime(2262, 4, 11, tzinfo=UTC), ["é"], True),
    ]
    assert native_takes(schema, rows)
    table = same(schema, rows)
    assert table.column("s").null_count == 1
    assert table.column("tags").to_pylist() == [[], [b"a", b"\x00"], None, ["é".encode()]]


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ([("a", 1), ("b",)], "a short row"),
        ([("a", 1, 2)], "a long row"),
        ([{"s": "a", "n": 1}], "a dict row"),
        ([("a", 2**64)], "past uint64"),
        ([("a", -1)], "negative into unsigned"),
        ([("a", True)], "a bool into an int"),
        ([(1, 1)], "an int into binary"),
        ([("a", 1.0)], "a float into an int"),
    ],
)
def test_refused_rows_go_to_pyarrow(rows: list[Any], why: str) -> None:
    schema = pa.schema([pa.field("s", pa.binary()), pa.field("n", pa.uint64())])
    assert arrow.native.columns(rows, specs_for(schema), False) is None, why  # type: ignore[union-attr]
    same(schema, rows)


def test_datetimes_out_of_the_converters_range_go_to_pyarrow() -> None:
    schema = pa.schema([pa.field("ts", pa.timestamp("ns", tz="UTC"))])
    far = [(datetime(2300, 1, 1, tzinfo=UTC),)]  # past int64 nanoseconds
    assert arrow.native.columns(far, specs_for(schema), False) is None  # type: ignore[union-attr]
    same(schema, far)
    paris = [(datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),)]
    assert arrow.native.columns(paris, specs_for(schema), False) is None  # type: ignore[union-attr]
    assert same(schema, paris).column("ts").to_pylist()[0] == datetime(2024, 7, 1, 10, tzinfo=UTC)


def test_types_the_converter_does_not_write() -> None:
    others = (pa.timestamp("us"), pa.timestamp("us", tz="Europe/Paris"))  # the store's timestamps are UTC
    for t in (pa.float32(), pa.string(), pa.date32(), pa.list_(pa.list_(pa.binary())), *others):
        assert specs_for(pa.schema([pa.field("c", t)])) is None
    floats = pa.schema([pa.field("f", pa.float64())])
    assert same(floats, [(2**53,), (-(2**53),), (0.5,)]) is not None
    assert native_takes(floats, [(2**53,), (-(2**53),)])
    assert same(floats, [(2**53 + 1,)]) is None  # a double does not hold it: pyarrow refuses, so does the converter
    schema = pa.schema([pa.field("f", pa.float32())])
    assert same(schema, [(1.5,)]) is not None


def test_bad_specs_are_errors() -> None:
    native = arrow.native
    assert native is not None
    with pytest.raises(ValueError, match="unknown column spec"):
        native.columns([(1,)], ((2, 3, 0, 0, 0),), False)
    with pytest.raises(ValueError, match="column spec"):
        native.columns([(1,)], ((2, 8),), False)
    with pytest.raises(TypeError):
        native.columns([(1,)], [(2, 8, 0, 0, 0)], False)


def test_buffers_outlive_the_rows() -> None:
    """The table owns copies: the rows can go (pyarrow reads bytearrays the converter made)."""
    schema = pa.schema([pa.field("s", pa.binary()), pa.field("l", pa.list_(pa.binary()))])

    def rows() -> Iterator[tuple[str, list[str]]]:
        for i in range(1000):
            yield (f"value-{i}" * 3, [f"a{i}", f"b{i}"])

    table = to_arrow(schema, list(rows()), False)
    assert table is not None
    assert table.column("s").to_pylist()[999] == b"value-999" * 3
    assert table.column("l").to_pylist()[5] == [b"a5", b"b5"]


def test_leg_rows_go_through_clickhouse_connect_too(migrated_store: Store, envelopes: list[Any]) -> None:
    """``LegRow.values()`` is the named tuple itself, arrays as tuples: the path without Arrow takes it as well."""
    legs, rows = first_legs(envelopes, 350)
    migrated_store.fast_insert = False
    assert migrated_store.insert("call_legs", rows, list(COLUMNS["call_legs"]), dedup_token="cc") == len(rows)
    got = {r["id"]: r for r in migrated_store.query("SELECT id, nodes, codecs, started_at FROM call_legs")}
    assert {leg.id: (tuple(got[leg.id]["nodes"]), tuple(got[leg.id]["codecs"])) for leg in legs} == {
        leg.id: (leg.nodes, leg.codecs) for leg in legs
    }
    assert all(got[leg.id]["started_at"] == leg.started_at for leg in legs)
