"""Rows into pyarrow tables for the chDB fast insert.

:func:`to_arrow` converts with the C function of ``callscope/store/_arrow.c`` when it is built
and every column of the schema has a type it writes (binary, bool, integers, float64,
timestamps, lists of those): the rows' values are copied straight into Arrow buffers,
several times cheaper than pyarrow's generic conversion of Python objects, which holds the
interpreter lock in the sink's worker thread while the event loop waits for it. A value the
C function does not write itself (another type, an int out of range, a datetime in another
time zone ...) hands the whole batch to :func:`to_arrow_pure`, pyarrow's conversion, so
results and refusals are always pyarrow's: ``tests/store/test_arrow.py`` compares the two.

:data:`PATH` says which runs (``"c"`` or ``"python"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["PATH", "native", "specs_for", "to_arrow", "to_arrow_pure"]

# Column kinds of the C function (callscope/store/_arrow.c).
_BINARY, _BOOL, _INT, _FLOAT64, _TIMESTAMP = range(5)
# Ticks of a timestamp unit per microsecond; units coarser than the microsecond take ints only.
_SCALE = {"us": 1, "ns": 1000, "s": 0, "ms": 0}


def _load() -> ModuleType | None:
    try:
        from callscope.store import _arrow
    except ImportError:
        return None
    return _arrow


#: The extension module, or ``None`` when pyarrow converts every batch.
native: ModuleType | None = _load()
PATH = "c" if native is not None else "python"

_specs: dict[Any, tuple[tuple[int, int, int, int, int], ...] | None] = {}


def _scalar_spec(t: Any) -> tuple[int, int, int, int] | None:
    import pyarrow as pa  # type: ignore[import-untyped]

    if t == pa.binary():
        return (_BINARY, 0, 0, 0)
    if t == pa.bool_():
        return (_BOOL, 0, 0, 0)
    if pa.types.is_integer(t):
        return (_INT, t.bit_width // 8, int(pa.types.is_signed_integer(t)), 0)
    if t == pa.float64():
        return (_FLOAT64, 8, 1, 0)
    if pa.types.is_timestamp(t) and t.tz == "UTC" and t.unit in _SCALE:  # the store's timestamps are UTC
        return (_TIMESTAMP, 8, 1, _SCALE[t.unit])
    return None


def specs_for(schema: Any) -> tuple[tuple[int, int, int, int, int], ...] | None:
    """The C function's column specs for ``schema``; None when a column's type is not one it writes (cached)."""
    if schema in _specs:
        return _specs[schema]
    import pyarrow as pa

    out: list[tuple[int, int, int, int, int]] | None = []
    for field in schema:
        t = field.type
        is_list = pa.types.is_list(t)
        spec = _scalar_spec(t.value_type if is_list else t)
        if spec is None or out is None:
            out = None
            break
        out.append((*spec, int(is_list)))
    result = tuple(out) if out is not None else None
    _specs[schema] = result
    return result


def _array(pa: Any, t: Any, column: tuple[int, int, Any, Any, Any]) -> Any:
    length, nulls, validity, offsets, data = column
    valid = None if validity is None else pa.py_buffer(validity)
    if pa.types.is_list(t):
        child = _array(pa, t.value_type, data)
        return pa.Array.from_buffers(t, length, [valid, pa.py_buffer(offsets)], null_count=nulls, children=[child])
    if offsets is not None:
        return pa.Array.from_buffers(t, length, [valid, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)
    return pa.Array.from_buffers(t, length, [valid, pa.py_buffer(data)], null_count=nulls)


def to_arrow_pure(schema: Any, rows: Sequence[Sequence[Any]], column_oriented: bool) -> Any | None:
    """``rows`` (or columns) as a pyarrow table of ``schema`` by pyarrow; None when it refuses a value."""
    import pyarrow as pa

    try:
        if column_oriented:
            arrays = [pa.array(column, field.type) for column, field in zip(rows, schema, strict=True)]
            return pa.Table.from_arrays(arrays, schema=schema)
        structs = pa.array(rows, pa.struct(list(schema)))
        return pa.Table.from_struct_array(structs)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def to_arrow(schema: Any, rows: Sequence[Sequence[Any]], column_oriented: bool) -> Any | None:
    """:func:`to_arrow_pure`'s table, built by the C function when it writes every value of ``rows``."""
    if native is not None:
        specs = specs_for(schema)
        if specs is not None:
            columns = native.columns(rows, specs, column_oriented)
            if columns is not None:
                import pyarrow as pa

                arrays = [_array(pa, field.type, col) for field, col in zip(schema, columns, strict=True)]
                return pa.Table.from_arrays(arrays, schema=schema)
    return to_arrow_pure(schema, rows, column_oriented)
