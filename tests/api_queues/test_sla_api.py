"""GET /api/v1/queues/{queue}/sla against figures worked out by hand (the table in conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from api.queue_models import SlaReport
from api.queue_sla import Figures, SlaRequest, derived, exact, rollup
from callscope.store.client import Store
from tests.api_queues.conftest import DAY, Seeded

SALES = "/api/v1/queues/sales/sla"
RANGE = {"from": DAY.isoformat(), "to": (DAY + timedelta(minutes=30)).isoformat()}
SOURCES = ("exact", "rollup", "auto")

# interval 10:00-10:15, 10:15-10:30, total (threshold 20 s, short abandons under 5 s)
COUNTS = [
    {
        "offered": 7,
        "answered": 3,
        "abandoned": 2,
        "short_abandoned": 1,
        "timed_out": 1,
        "exit_empty": 0,
        "exit_key": 1,
        "other_unanswered": 0,
        "rejected": 1,
        "answered_within_threshold": 2,  # waits 10 and 20 (25 is over)
        "asa_secs": 18.333,  # (10 + 25 + 20) / 3
        "aht_secs": 120.0,  # (100 + 200 + 60) / 3
        "max_wait_secs": 300.0,  # the caller who timed out
        "abandon_rate": 0.285714,  # 2 / 7
    },
    {
        "offered": 3,
        "answered": 1,
        "abandoned": 1,
        "short_abandoned": 0,
        "timed_out": 0,
        "exit_empty": 1,
        "exit_key": 0,
        "other_unanswered": 0,
        "rejected": 0,
        "answered_within_threshold": 1,
        "asa_secs": 5.0,
        "aht_secs": 30.0,
        "max_wait_secs": 5.0,
        "abandon_rate": 0.333333,
    },
    {
        "offered": 10,
        "answered": 4,
        "abandoned": 3,
        "short_abandoned": 1,
        "timed_out": 1,
        "exit_empty": 1,
        "exit_key": 1,
        "other_unanswered": 0,
        "rejected": 1,
        "answered_within_threshold": 3,
        "asa_secs": 15.0,  # (55 + 5) / 4
        "aht_secs": 97.5,  # 390 / 4
        "max_wait_secs": 300.0,
        "abandon_rate": 0.3,
    },
]
# service level per denominator: (denominator, include_timeouts) -> [(denominator count, level) per column above]
LEVELS = {
    ("answered", False): [(3, 0.666667), (1, 1.0), (4, 0.75)],
    ("answered_abandoned", False): [(5, 0.4), (2, 0.5), (7, 0.428571)],
    ("answered_abandoned_non_short", False): [(4, 0.5), (2, 0.5), (6, 0.5)],
    ("answered_abandoned", True): [(6, 0.333333), (2, 0.5), (8, 0.375)],
    ("answered", True): [(4, 0.5), (1, 1.0), (5, 0.6)],
}


async def sla(client: httpx.AsyncClient, url: str = SALES, **params: Any) -> dict[str, Any]:
    resp = await client.get(url, params={**RANGE, **params})
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    SlaReport.model_validate(doc)  # the documented shape
    return doc


def columns(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [*doc["intervals"], doc["total"]]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("denominator", "timeouts"), list(LEVELS))
async def test_figures_by_hand_for_each_denominator(
    client: httpx.AsyncClient, source: str, denominator: str, timeouts: bool
) -> None:
    doc = await sla(client, source=source, denominator=denominator, include_timeouts=str(timeouts).lower())
    assert doc["source"] == ("exact" if source == "exact" else "rollup")
    assert (doc["interval_secs"], doc["threshold_secs"], doc["short_abandon_secs"]) == (900, 20, 5)
    assert (doc["denominator"], doc["include_timeouts"]) == (denominator, timeouts)
    assert [datetime.fromisoformat(i["start"]) for i in doc["intervals"]] == [DAY, DAY + timedelta(minutes=15)]
    for got, counts, (den, level) in zip(columns(doc), COUNTS, LEVELS[denominator, timeouts], strict=True):
        assert {k: got[k] for k in counts} == counts
        assert (got["service_level_denominator"], got["service_level"]) == (den, level)


@pytest.mark.parametrize("source", SOURCES)
async def test_threshold_and_short_abandon_per_request(client: httpx.AsyncClient, source: str) -> None:
    doc = await sla(client, source=source, threshold_secs=25, short_abandon_secs=6)
    a, b, total = columns(doc)
    assert (a["answered_within_threshold"], b["answered_within_threshold"]) == (3, 1)
    assert (a["short_abandoned"], b["short_abandoned"], total["short_abandoned"]) == (1, 1, 2)  # 3 s and 5 s
    doc = await sla(client, source=source, threshold_secs=0, short_abandon_secs=0)
    assert (doc["total"]["answered_within_threshold"], doc["total"]["short_abandoned"]) == (0, 0)


async def test_the_config_defaults_apply(client: httpx.AsyncClient) -> None:
    doc = await sla(client)
    assert (doc["denominator"], doc["include_timeouts"], doc["threshold_secs"]) == ("answered_abandoned", False, 20)
    assert doc["total"]["service_level"] == 0.428571


async def test_unaligned_requests_take_the_exact_path(client: httpx.AsyncClient) -> None:
    doc = await sla(client, **{"from": (DAY + timedelta(minutes=3)).isoformat()}, interval="5m")
    assert doc["source"] == "exact"
    # 10:03-08, 08-13, 13-18, 18-23, 23-28, 28-30 (the last one shorter)
    assert [i["offered"] for i in doc["intervals"]] == [4, 0, 2, 1, 0, 0]
    assert datetime.fromisoformat(doc["intervals"][-1]["end"]) == DAY + timedelta(minutes=30)
    resp = await client.get(SALES, params={**RANGE, "interval": "5m", "source": "rollup"})
    assert resp.status_code == 422
    assert "15 minutes" in resp.json()["detail"]


async def test_whole_range_and_hourly_intervals(client: httpx.AsyncClient) -> None:
    whole = await sla(client, interval="total")
    assert len(whole["intervals"]) == 1
    assert whole["intervals"][0]["offered"] == whole["total"]["offered"] == 10
    hourly = await sla(client, interval="1h", **{"to": (DAY + timedelta(hours=3)).isoformat()})
    assert [i["offered"] for i in hourly["intervals"]] == [10, 0, 0]
    assert hourly["intervals"][1]["service_level"] is None  # nothing to divide by
    assert hourly["intervals"][1]["asa_secs"] is None
    other = await sla(client, url="/api/v1/queues/support/sla")
    assert (other["total"]["offered"], other["total"]["answered"]) == (1, 1)


async def test_sessions_ended_but_not_final_are_counted_at_once(
    client: httpx.AsyncClient, seeded: Seeded, migrated_store: Store
) -> None:
    # the whole 15-minute blocks around the sessions (the API takes a 'to' in the future), so the rollup path runs
    to = seeded.recent_start + timedelta(minutes=30)
    params = {"from": seeded.recent_start.isoformat(), "to": to.isoformat(), "interval": "total"}
    url = "/api/v1/queues/recent/sla"
    exact_doc = (await client.get(url, params={**params, "source": "exact"})).json()
    auto_doc = (await client.get(url, params={**params, "source": "auto"})).json()
    assert auto_doc["source"] == "rollup"
    # r1 (final, answered) and r2 (ended, not final yet: from the tail); r3 is still talking
    assert (exact_doc["total"]["offered"], exact_doc["total"]["answered"], exact_doc["total"]["abandoned"]) == (2, 1, 1)
    assert auto_doc["total"] == exact_doc["total"]
    req = SlaRequest("recent", seeded.recent_start, seeded.now, 3600, 20, 5, "answered", include_timeouts=False)
    end = seeded.recent_start + timedelta(hours=1)
    assert sum(f.offered for f in rollup(migrated_store, req, seeded.recent_start, end).values()) == 1


async def test_the_rollup_equals_the_exact_query(migrated_store: Store, seeded: Seeded) -> None:
    for step in (900, 1800, 3600):
        req = SlaRequest("sales", DAY, DAY + timedelta(hours=2), step, 20, 5, "answered", include_timeouts=False)
        got = rollup(migrated_store, req, req.start, req.end)
        assert got == exact(migrated_store, req, req.start, req.end)
        assert sum(f.offered for f in got.values()) == 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to": RANGE["from"]}, "after"),
        ({"interval": "7x"}, "interval"),
        ({"interval": "30s"}, "60 seconds"),
        ({"interval": "1m", "to": (DAY + timedelta(days=30)).isoformat()}, "intervals"),
        ({"to": (DAY + timedelta(days=500)).isoformat(), "interval": "1d"}, "400 days"),
    ],
)
async def test_bad_requests_are_422(client: httpx.AsyncClient, params: dict[str, str], message: str) -> None:
    resp = await client.get(SALES, params={**RANGE, **params})
    assert resp.status_code == 422
    assert message in resp.json()["detail"]


def test_aht_counts_only_calls_whose_talk_time_is_known() -> None:
    req = SlaRequest("q", DAY, DAY + timedelta(hours=1), 900, 20, 5, "answered", include_timeouts=False)
    # 3 answered, one of them answered_lost (no talk time): AHT over the two others
    figures = Figures(offered=3, answered=3, answered_within=3, wait_answered_sum=30.0, talk_sum=300.0, talked=2)
    got = derived(figures, req)
    assert (got["aht_secs"], got["asa_secs"], got["service_level"]) == (150.0, 10.0, 1.0)
    assert derived(Figures(), req)["aht_secs"] is None


async def test_a_read_token_is_needed(client: httpx.AsyncClient) -> None:
    resp = await client.get(SALES, params=RANGE, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
