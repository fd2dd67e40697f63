"""What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it.

Three steps, in Grafana's order, as the plugin documents them (README "Macros" table and
``pkg/macros/macros.go``):

1. ``$__conditionalAll(condition, $var)`` (the plugin's frontend): the condition, or ``1=1`` when
   the variable is set to All (or empty).
2. Template variables (Grafana's frontend): ``$var``, ``${var}``, ``${var:singlequote}``,
   ``${var:sqlstring}``, ``${var:raw}``, ``${var:csv}``; All means every option of the variable.
3. The plugin's backend macros, from the query's time range and interval:
   ``$__timeFilter(c)`` = ``c >= toDateTime(FROM) AND c <= toDateTime(TO)`` (Unix seconds),
   ``$__timeFilter_ms(c)`` the same with ``fromUnixTimestamp64Milli(ms)``, ``$__dateFilter(c)``
   with ``toDate('YYYY-MM-DD')``, ``$__dateTimeFilter(d, t)`` / ``$__dt(d, t)`` both in
   parentheses joined by AND, ``$__fromTime`` / ``$__toTime`` (``toDateTime(s)``),
   ``$__fromTime_ms`` / ``$__toTime_ms``, ``$__timeInterval(c)`` =
   ``toStartOfInterval(toDateTime(c), INTERVAL N second)``, ``$__timeInterval_ms(c)``
   (``toDateTime64(c, 3)``, N millisecond), ``$__interval_s`` = N; N is the panel interval, at least 1.

Pure functions (no clock): the caller passes the time range. An unknown ``$__`` macro or a wrong
argument count raises :class:`MacroError`, the way the plugin rejects the query.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime


class MacroError(ValueError):
    """The SQL uses a macro the plugin does not define, or with the wrong number of arguments."""


@dataclasses.dataclass(frozen=True)
class Variable:
    """A dashboard variable's current state: ``selected`` None means All."""

    name: str
    options: tuple[str, ...] = ()
    selected: tuple[str, ...] | None = None

    @property
    def is_all(self) -> bool:
        return self.selected is None or self.selected == ("$__all",)

    def values(self) -> tuple[str, ...]:
        return self.options if self.is_all else tuple(self.selected or ())


@dataclasses.dataclass(frozen=True)
class QueryContext:
    """The time range and interval Grafana sends with a query."""

    start: datetime
    end: datetime
    interval_ms: int = 60_000
    variables: tuple[Variable, ...] = ()

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)


def split_args(text: str, open_index: int) -> tuple[list[str], int]:
    """Arguments of the call whose ``(`` is at ``open_index`` (top-level commas), and the index after ``)``."""
    depth = 0
    args: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for index in range(open_index, len(text)):
        char = text[index]
        if quote is not None:
            current.append(char)
            if char == quote and text[index - 1] != "\\":
                quote = None
            continue
        if char in "'\"":
            quote = char
            current.append(char)
        elif char == "(":
            depth += 1
            if depth > 1:
                current.append(char)
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current))
                return args, index + 1
            current.append(char)
        elif char == "," and depth == 1:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    raise MacroError(f"unbalanced parentheses after position {open_index}")


_CONDITIONAL_ALL = "$__conditionalAll("


def apply_conditional_all(sql: str, ctx: QueryContext) -> str:
    """Step 1: each ``$__conditionalAll(cond, $var)`` becomes ``cond`` or ``1=1`` (All or empty)."""
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        args, end = split_args(sql, index + len(_CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll expects 2 arguments, got {len(args)}")
        name = args[1].strip().lstrip("$").strip("{}")
        variable = ctx.variable(name)
        phrase = args[0]
        if variable is None or variable.is_all or not variable.values():
            phrase = "1=1"
        sql = sql[:index] + phrase + sql[end:]
        index = sql.rfind(_CONDITIONAL_ALL, 0, index)
    return sql


_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<format>[a-z]+))?\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


def _format(values: tuple[str, ...], fmt: str | None) -> str:
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt in (None, "raw", "csv"):
        return ",".join(values) if fmt == "csv" or len(values) != 1 else values[0]
    raise MacroError(f"variable format {fmt!r} is not one the dashboards use")


def interpolate_variables(sql: str, ctx: QueryContext) -> str:
    """Step 2: Grafana's template variables; ``$__`` names are left for step 3."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        if name.startswith("__"):
            return match.group(0)
        variable = ctx.variable(name)
        if variable is None:
            raise MacroError(f"the SQL uses ${name}, which is not a variable of the dashboard")
        return _format(variable.values(), match.group("format"))

    return _VARIABLE.sub(replace, sql)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC).strftime('%Y-%m-%d')}')"


def _backend(name: str, args: list[str], ctx: QueryContext) -> str:
    frm, to = ctx.start, ctx.end
    seconds = max(ctx.interval_ms // 1000, 1)
    dt_from, dt_to = f"toDateTime({_seconds(frm)})", f"toDateTime({_seconds(to)})"
    ms_from, ms_to = f"fromUnixTimestamp64Milli({_millis(frm)})", f"fromUnixTimestamp64Milli({_millis(to)})"
    no_args = {
        "fromTime": dt_from,
        "toTime": dt_to,
        "fromTime_ms": ms_from,
        "toTime_ms": ms_to,
        "interval_s": str(seconds),
    }
    if name in no_args:
        return no_args[name]
    wanted = 2 if name in ("dateTimeFilter", "dt") else 1
    if len(args) != wanted:
        raise MacroError(f"$__{name} expects {wanted} argument(s), got {len(args)}")
    col = args[0].strip()
    if name == "timeFilter":
        return f"{col} >= {dt_from} AND {col} <= {dt_to}"
    if name == "timeFilter_ms":
        return f"{col} >= {ms_from} AND {col} <= {ms_to}"
    if name == "dateFilter":
        return f"{col} >= {_date(frm)} AND {col} <= {_date(to)}"
    if name in ("dateTimeFilter", "dt"):
        time_col = args[1].strip()
        return (
            f"({col} >= {_date(frm)} AND {col} <= {_date(to)}) AND ({time_col} >= {dt_from} AND {time_col} <= {dt_to})"
        )
    if name == "timeInterval":
        return f"toStartOfInterval(toDateTime({col}), INTERVAL {seconds} second)"
    if name == "timeInterval_ms":
        millis = max(ctx.interval_ms, 1)
        return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {millis} millisecond)"
    raise MacroError(f"$__{name} is not a macro of the ClickHouse plugin")  # pragma: no cover


_WITH_ARGS = ("timeFilter_ms", "timeFilter", "dateTimeFilter", "dateFilter", "dt", "timeInterval_ms", "timeInterval")
_NO_ARGS = ("fromTime_ms", "toTime_ms", "fromTime", "toTime", "interval_s")
_MACRO = re.compile(r"\$__([A-Za-z_]+)")


def apply_backend_macros(sql: str, ctx: QueryContext) -> str:
    """Step 3: the plugin's backend macros (longest names first, ``$__timeFilter_ms`` before ``$__timeFilter``)."""
    out: list[str] = []
    pos = 0
    while (match := _MACRO.search(sql, pos)) is not None:
        word = match.group(1)
        name = next((m for m in (*_WITH_ARGS, *_NO_ARGS) if word == m), None)
        if name is None:
            raise MacroError(f"$__{word} is not a macro of the ClickHouse plugin")
        out.append(sql[pos : match.start()])
        if name in _WITH_ARGS:
            if match.end() >= len(sql) or sql[match.end()] != "(":
                raise MacroError(f"$__{name} needs its arguments in parentheses")
            args, end = split_args(sql, match.end())
            out.append(_backend(name, args, ctx))
            pos = end
        else:
            out.append(_backend(name, [], ctx))
            pos = match.end()
    out.append(sql[pos:])
    return "".join(out)


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL as ClickHouse receives it from the plugin."""
    return apply_backend_macros(interpolate_variables(apply_conditional_all(sql, ctx), ctx), ctx)
