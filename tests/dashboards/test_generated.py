"""The committed JSON is what the code generates; uids are unique and stable; every panel is complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from dashboards.grafana.gen.panels import TRACE_URL
from dashboards.grafana.gen.render import OUTPUT_DIR, rendered, stale, write
from tests.dashboards.model import dashboards, panel_id, panels

ROOT = Path(__file__).resolve().parents[2]

#: Links to dashboards (bookmarks, the wall screens, the Call-ID links) use these: never change one.
STABLE_UIDS = {
    "noc": "callscope-noc",
    "trunks": "callscope-trunks",
    "queues": "callscope-queues",
    "call-quality": "callscope-call-quality",
    "registrations": "callscope-registrations",
    "nodes": "callscope-nodes",
    "call-trace": "callscope-call-trace",
}


def test_committed_json_is_current() -> None:
    assert stale() == [], "run `make dashboards` and commit the JSON"
    for name, content in rendered().items():
        assert (OUTPUT_DIR / name).read_text(encoding="utf-8") == content


def test_generation_is_deterministic_with_sorted_keys() -> None:
    first, second = rendered(), rendered()
    assert first == second
    for content in first.values():
        data = json.loads(content)
        assert json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == content


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert sorted(write(tmp_path)) == sorted(rendered())
    assert stale(tmp_path) == []
    assert write(tmp_path) == []  # nothing changed the second time
    (tmp_path / "noc.json").write_text("{}", encoding="utf-8")
    (tmp_path / "old.json").write_text("{}", encoding="utf-8")
    assert stale(tmp_path) == ["noc.json", "old.json"]


def test_module_entry_point_checks_the_committed_files() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dashboards.grafana", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "dashboards are current" in proc.stdout


def test_uids_are_unique_and_stable() -> None:
    uids = {stem: board["uid"] for stem, board in dashboards().items()}
    assert uids == STABLE_UIDS
    assert len(set(uids.values())) == len(uids)
    for uid in uids.values():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid), uid


def test_panel_ids_are_unique_per_dashboard() -> None:
    for board in dashboards().values():
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))


def test_every_panel_has_title_description_and_unit() -> None:
    for stem, panel in panels():
        where = panel_id(stem, panel)
        assert panel.get("title", "").strip(), where
        assert len(panel.get("description", "").strip()) >= 20, where
        assert panel["fieldConfig"]["defaults"].get("unit"), where


def test_titles_are_unique_per_dashboard() -> None:
    for board in dashboards().values():
        titles = [p["title"] for p in board["panels"]]
        assert len(titles) == len(set(titles)), board["uid"]


def test_the_dashboards_the_issue_asks_for() -> None:
    titles = {board["title"] for board in dashboards().values()}
    assert titles == {
        "callscope / NOC wallboard",
        "callscope / Trunks",
        "callscope / Queues and agents",
        "callscope / Call quality",
        "callscope / Registrations",
        "callscope / Nodes and pipeline",
        "callscope / Call trace",
    }
    noc = {p["title"] for p in dashboards()["noc"]["panels"]}
    assert noc == {
        "Active calls",
        "Calls per minute",
        "ACD",
        "ASR per trunk",
        "ACD per trunk",
        "NER per trunk",
        "Trunk OPTIONS status by vantage node",
        "Queue service level now",
        "Worst call quality",
        "Pipeline health",
    }


def test_filter_variables_where_they_apply() -> None:
    def names(stem: str) -> set[str]:
        return {v["name"] for v in dashboards()[stem]["templating"]["list"]}

    assert {"node", "trunk", "queue", "api_url"} <= names("noc")
    assert {"node", "trunk"} <= names("trunks")
    assert "queue" in names("queues")
    for stem in ("registrations", "nodes", "call-quality"):
        assert "node" in names(stem)
    assert {"call_id", "api_url"} <= names("call-trace")


def _selected_columns(sql: str) -> str:
    match = re.search(r"SELECT(.*?)\bFROM\b", sql, re.DOTALL)
    return match.group(1) if match else ""


def test_every_call_id_cell_links_to_the_trace_page() -> None:
    linked = 0
    for stem, panel in panels():
        if panel["type"] != "table":
            continue
        sql = panel["targets"][0].get("rawSql", "")
        if not re.search(r"(^|[\s,])call_id\s*,", _selected_columns(sql)):
            continue
        overrides = {o["matcher"]["options"]: o for o in panel["fieldConfig"]["overrides"]}
        assert "call_id" in overrides, panel_id(stem, panel)
        [links] = [p["value"] for p in overrides["call_id"]["properties"] if p["id"] == "links"]
        assert links[0]["url"] == TRACE_URL == "${api_url}/api/v1/calls/${__value.raw}/ladder?format=html"
        assert links[1]["url"].startswith("/d/callscope-call-trace?var-call_id=${__value.raw}")
        linked += 1
    assert linked >= 4


def test_trace_dashboard_shows_the_ladder_beside_the_messages() -> None:
    board = dashboards()["call-trace"]
    ladder, messages = board["panels"][0], board["panels"][1]
    assert ladder["type"] == "text"
    assert ladder["options"]["mode"] == "html"
    assert '<img src="${api_url}/api/v1/calls/${call_id}/ladder?format=svg"' in ladder["options"]["content"]
    assert messages["title"] == "SIP messages"
    # Side by side: same row, left and right halves.
    assert (ladder["gridPos"]["y"], messages["gridPos"]["y"]) == (0, 0)
    assert ladder["gridPos"]["x"] + ladder["gridPos"]["w"] <= messages["gridPos"]["x"]
    assert "${call_id:sqlstring}" in messages["targets"][0]["rawSql"]  # quoted, not pasted raw


def test_panels_fit_the_grid() -> None:
    for stem, panel in panels():
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel_id(stem, panel)
        assert pos["x"] + pos["w"] <= 24, panel_id(stem, panel)
