"""Type stub of the C row converter (callscope/store/_arrow.c); see callscope/store/arrow.py."""

from typing import Any

Column = tuple[int, int, bytearray | None, bytearray | None, Any]

def columns(
    data: Any, specs: tuple[tuple[int, int, int, int, int], ...], column_oriented: bool, /
) -> list[Column] | None: ...
