"""The macro expansion the SQL tests rely on, checked against the plugin's documented outputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.grafana.gen.macros import MacroError, QueryContext, Variable, expand, split_args

# The README's examples use from = 1415792726(.123) and to = 1447328726(.456).
FROM = datetime.fromtimestamp(1415792726.123, UTC)
TO = datetime.fromtimestamp(1447328726.456, UTC)
CTX = QueryContext(start=FROM, end=TO, interval_ms=20_000)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"),
        (
            "$__timeFilter_ms(time)",
            "time >= fromUnixTimestamp64Milli(1415792726123) AND time <= fromUnixTimestamp64Milli(1447328726456)",
        ),
        ("$__dateFilter(date)", "date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(d, t)",
            "(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND "
            "(t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))",
        ),
        (
            "$__dt(d, t)",
            "(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND "
            "(t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))",
        ),
        ("$__fromTime", "toDateTime(1415792726)"),
        ("$__toTime", "toDateTime(1447328726)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726123)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726456)"),
        ("$__interval_s", "20"),
        ("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"),
        ("$__timeInterval_ms(column)", "toStartOfInterval(toDateTime64(column, 3), INTERVAL 20000 millisecond)"),
        # Arguments may themselves contain calls and commas.
        (
            "$__timeFilter(toDateTime(ts, 'UTC'))",
            "toDateTime(ts, 'UTC') >= toDateTime(1415792726) AND toDateTime(ts, 'UTC') <= toDateTime(1447328726)",
        ),
    ],
)
def test_backend_macros_expand_as_documented(sql: str, expected: str) -> None:
    assert expand(sql, CTX) == expected


def test_interval_is_at_least_one_second() -> None:
    ctx = QueryContext(start=FROM, end=TO, interval_ms=200)
    assert expand("$__interval_s", ctx) == "1"
    assert expand("$__timeInterval(c)", ctx) == "toStartOfInterval(toDateTime(c), INTERVAL 1 second)"


NODE_ALL = Variable("node", options=("a", "b"))
NODE_ONE = Variable("node", options=("a", "b"), selected=("b",))


def test_conditional_all_keeps_the_condition_for_a_selection() -> None:
    ctx = QueryContext(FROM, TO, variables=(NODE_ONE,))
    assert expand("WHERE $__conditionalAll(node IN (${node:singlequote}), $node)", ctx) == "WHERE node IN ('b')"


def test_conditional_all_is_true_for_all_and_for_an_empty_selection() -> None:
    for variable in (NODE_ALL, Variable("node", options=("a",), selected=())):
        ctx = QueryContext(FROM, TO, variables=(variable,))
        assert expand("WHERE $__conditionalAll(node IN (${node:singlequote}), $node) AND x", ctx) == "WHERE 1=1 AND x"


def test_several_conditional_alls_nest_with_other_macros() -> None:
    ctx = QueryContext(FROM, TO, interval_ms=60_000, variables=(NODE_ONE, Variable("queue", ("q",))))
    sql = "$__conditionalAll(hasAny(nodes, [${node:singlequote}]), $node) AND $__conditionalAll(q IN ($queue), $queue)"
    assert expand(sql, ctx) == "hasAny(nodes, ['b']) AND 1=1"


def test_variable_formats() -> None:
    ctx = QueryContext(FROM, TO, variables=(Variable("v", ("it's", "b")), Variable("one", ("x",))))
    assert expand("${v:singlequote}", ctx) == "'it\\'s','b'"
    assert expand("${v:sqlstring}", ctx) == "'it''s','b'"
    assert expand("${v:csv}", ctx) == "it's,b"
    assert expand("$one ${one}", ctx) == "x x"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__timeFilter(a, b)", "expects 1 argument"),
        ("$__dateTimeFilter(a)", "expects 2 argument"),
        ("$__timeFilter", "needs its arguments"),
        ("$__timeGroup(ts, 1m)", "not a macro of the ClickHouse plugin"),
        ("$__conditionalAll(a)", "expects 2 arguments"),
        ("$__timeFilter(ts", "unbalanced"),
        ("$missing", "not a variable"),
        ("${node:percentencode}", "not one the dashboards use"),
    ],
)
def test_bad_macros_are_rejected(sql: str, message: str) -> None:
    ctx = QueryContext(FROM, TO, variables=(NODE_ALL,))
    with pytest.raises(MacroError, match=message):
        expand(sql, ctx)


def test_split_args_respects_quotes_and_nesting() -> None:
    text = "f(a, 'x,)y', g(b, c))"
    assert split_args(text, 1) == (["a", " 'x,)y'", " g(b, c)"], len(text))
