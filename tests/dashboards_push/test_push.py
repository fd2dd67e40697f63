"""``callscope dashboards push`` against a recording stand-in for Grafana's HTTP API.

The requests are asserted exactly (method, path, the uids in the bodies, the overwrite flag,
the folder uid, the Bearer token), for a first push into an empty Grafana and for a second
push that must write nothing.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
from pathlib import Path

import pytest

from callscope.cli import main
from callscope.grafana_push import GrafanaPushError, PushOptions, push
from tests.cli_process import CLI
from tests.dashboards_push.conftest import TOKEN, dashboard
from tests.dashboards_push.fake_grafana import FakeGrafana

pytestmark = pytest.mark.usefixtures("grafana_env")

FIRST_PUSH = [
    "GET /api/health",
    "GET /api/search",
    "POST /api/folders",
    "GET /api/datasources/uid/callscope-clickhouse",
    "POST /api/datasources",
    "GET /api/datasources/uid/callscope-prometheus",
    "POST /api/datasources",
    "GET /api/dashboards/uid/callscope-noc",
    "POST /api/dashboards/db",
    "GET /api/dashboards/uid/callscope-trunks",
    "POST /api/dashboards/db",
]


def run(grafana_url: str, files: Path, *extra: str) -> int:
    return main(["dashboards", "push", "--url", grafana_url, "--token", TOKEN, "--dir", str(files), *extra])


def assert_token_hidden(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert TOKEN not in out
    assert TOKEN not in err
    return out, err


def test_first_push_creates_folder_datasources_and_dashboards(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(grafana.url, files) == 0
    out, _ = assert_token_hidden(capsys)

    assert grafana.lines() == FIRST_PUSH
    reqs = grafana.requests
    assert all(r.authorization == f"Bearer {TOKEN}" for r in reqs)
    assert reqs[1].query == {"query": ["callscope"], "type": ["dash-folder"]}
    assert reqs[2].body == {"title": "callscope"}
    folder_uid = next(iter(grafana.state.folders))

    clickhouse, prometheus = reqs[4].body, reqs[6].body
    assert clickhouse == {
        "name": "callscope ClickHouse",
        "type": "grafana-clickhouse-datasource",
        "uid": "callscope-clickhouse",
        "access": "proxy",
        "jsonData": {
            "host": "clickhouse.db.svc",
            "port": 8123,
            "protocol": "http",
            "username": "grafana",
            "defaultDatabase": "callscope",
        },
        "secureJsonData": {"password": "ch-secret"},
    }
    assert prometheus["uid"] == "callscope-prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert "secureJsonData" not in prometheus

    for req, uid in ((reqs[8], "callscope-noc"), (reqs[10], "callscope-trunks")):
        assert req.body["overwrite"] is True
        assert req.body["folderUid"] == folder_uid
        assert req.body["dashboard"]["uid"] == uid
        assert req.body["dashboard"]["id"] is None
        assert req.body["message"] == "pushed by callscope dashboards push"

    assert f'folder "callscope" (uid {folder_uid}): created' in out
    assert 'datasource callscope-clickhouse "callscope ClickHouse": created' in out
    assert 'dashboard callscope-noc "NOC wallboard": created' in out
    assert "pushed 2 datasource(s) and 2 dashboard(s): 4 created, 0 updated, 0 unchanged" in out


def test_second_push_writes_nothing_but_the_secrets(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(grafana.url, files) == 0
    stored = {uid: model["version"] for uid, (model, _) in grafana.state.dashboards.items()}
    grafana.clear()
    capsys.readouterr()

    assert run(grafana.url, files) == 0
    out, _ = assert_token_hidden(capsys)
    assert grafana.lines() == [
        "GET /api/health",
        "GET /api/search",
        "GET /api/datasources/uid/callscope-clickhouse",
        # Grafana never returns secrets, so a datasource that has some is re-sent.
        "PUT /api/datasources/uid/callscope-clickhouse",
        "GET /api/datasources/uid/callscope-prometheus",
        "GET /api/dashboards/uid/callscope-noc",
        "GET /api/dashboards/uid/callscope-trunks",
    ]
    assert grafana.requests[3].body["secureJsonData"] == {"password": "ch-secret"}
    assert {uid: model["version"] for uid, (model, _) in grafana.state.dashboards.items()} == stored
    assert len(grafana.state.folders) == 1
    assert 'folder "callscope"' in out
    assert "): unchanged" in out
    assert 'datasource callscope-prometheus "callscope Prometheus": unchanged' in out
    assert "(secrets are re-sent on every push)" in out
    assert 'dashboard callscope-trunks "Trunks": unchanged' in out
    assert "0 created, 1 updated, 3 unchanged" in out


def test_changed_dashboard_is_overwritten_by_uid(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(grafana.url, files, "--no-datasources") == 0
    changed = dashboard("callscope-trunks", "Trunks", stat_title="Calls in progress")
    (files / "trunks.json").write_text(json.dumps(changed))
    grafana.clear()
    capsys.readouterr()

    assert run(grafana.url, files, "--no-datasources") == 0
    out, _ = assert_token_hidden(capsys)
    assert grafana.lines() == [
        "GET /api/health",
        "GET /api/search",
        "GET /api/dashboards/uid/callscope-noc",
        "GET /api/dashboards/uid/callscope-trunks",
        "POST /api/dashboards/db",
    ]
    posted = grafana.requests[-1].body
    assert posted["overwrite"] is True
    assert posted["dashboard"]["uid"] == "callscope-trunks"
    assert posted["dashboard"]["panels"][0]["title"] == "Calls in progress"
    model, _ = grafana.state.dashboards["callscope-trunks"]
    assert model["version"] == 2
    assert 'dashboard callscope-trunks "Trunks": updated' in out
    assert "pushed 0 datasource(s) and 2 dashboard(s): 0 created, 1 updated, 1 unchanged" in out


def test_existing_folder_is_found_by_title(grafana: FakeGrafana, files: Path) -> None:
    grafana.add_folder("VoIP NOC", "noc-folder")
    grafana.add_folder("VoIP NOC archive", "old-folder")
    assert run(grafana.url, files, "--folder", "voip noc", "--no-datasources") == 0
    assert "POST /api/folders" not in grafana.lines()
    posts = [r for r in grafana.requests if r.line == "POST /api/dashboards/db"]
    assert [p.body["folderUid"] for p in posts] == ["noc-folder", "noc-folder"]


def test_dashboard_moved_to_another_folder_is_posted_again(grafana: FakeGrafana, files: Path) -> None:
    assert run(grafana.url, files, "--no-datasources") == 0
    grafana.clear()
    assert run(grafana.url, files, "--no-datasources", "--folder", "Wallboards") == 0
    assert grafana.lines().count("POST /api/dashboards/db") == 2
    new_uid = next(uid for uid, f in grafana.state.folders.items() if f["title"] == "Wallboards")
    assert {folder for _, folder in grafana.state.dashboards.values()} == {new_uid}


def test_grafana_under_a_sub_path(files: Path) -> None:
    server = FakeGrafana(TOKEN, prefix="/grafana")
    server.start()
    try:
        assert run(server.url + "/", files) == 0
        assert server.lines() == FIRST_PUSH
    finally:
        server.stop()


def test_bad_token_is_401(grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dashboards", "push", "--url", grafana.url, "--token", "wrong-token", "--dir", str(files)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "401 Unauthorized" in err
    assert "refused the token" in err
    assert "wrong-token" not in out + err
    assert grafana.lines() == ["GET /api/health", "GET /api/search"]  # not retried


def test_missing_permission_is_403(grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana.forbidden.add("POST /api/datasources")
    assert run(grafana.url, files) == 1
    _, err = assert_token_hidden(capsys)
    assert "POST /api/datasources: 403 Forbidden" in err
    assert "lacks the permission" in err
    assert "additional permissions" in err  # Grafana's own message
    assert grafana.lines().count("POST /api/datasources") == 1
    # The same token can still push the dashboards alone.
    assert run(grafana.url, files, "--no-datasources") == 0


def test_wrong_url_is_404(grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(grafana.url + "/not-grafana", files) == 1
    _, err = assert_token_hidden(capsys)
    assert "GET /api/health: 404 Not Found: no Grafana API at" in err
    assert "/not-grafana/" in err


def test_server_errors_are_retried_with_backoff(grafana: FakeGrafana, files: Path) -> None:
    grafana.failures["POST /api/dashboards/db"] = 2
    delays: list[float] = []
    out = io.StringIO()
    options = PushOptions(url=grafana.url, token=TOKEN, directory=files, datasources=False, retries=3)
    report = push(options, out, environ={}, sleep=delays.append)
    assert delays == [0.5, 1.0]
    assert grafana.lines().count("POST /api/dashboards/db") == 4  # 2 failed + 1 + the second dashboard
    assert report.count("created") == 2
    assert TOKEN not in out.getvalue()


def test_server_errors_give_up_after_the_retries(grafana: FakeGrafana, files: Path) -> None:
    grafana.failures["GET /api/search"] = -1
    delays: list[float] = []
    options = PushOptions(url=grafana.url, token=TOKEN, directory=files, retries=3, backoff_secs=1.0)
    environ = {"CLICKHOUSE_HOST": "ch", "CLICKHOUSE_PASSWORD": ""}
    with pytest.raises(GrafanaPushError) as info:
        push(options, io.StringIO(), environ=environ, sleep=delays.append)
    assert delays == [1.0, 2.0, 4.0]
    assert str(info.value) == (
        "GET /api/search?type=dash-folder: Grafana answered 503: database is locked (gave up after 4 attempts)"
    )
    assert grafana.lines().count("GET /api/search") == 4


def test_server_error_exit_code(grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana.failures["POST /api/folders"] = -1
    assert run(grafana.url, files, "--retries", "1") == 1
    _, err = assert_token_hidden(capsys)
    assert "POST /api/folders: Grafana answered 503" in err
    assert "gave up after 2 attempts" in err


def test_connection_refused(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run(f"http://127.0.0.1:{port}", files, "--retries", "0") == 1
    _, err = assert_token_hidden(capsys)
    assert f"cannot connect to Grafana at http://127.0.0.1:{port}/: connection refused" in err
    assert "gave up after 1 attempt)" in err


def test_datasource_name_taken_by_another_uid(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grafana.state.datasources["hand-made"] = {"uid": "hand-made", "name": "callscope Prometheus", "id": 9}
    assert run(grafana.url, files) == 1
    _, err = assert_token_hidden(capsys)
    assert "POST /api/datasources: 409 data source with the same name already exists" in err
    assert "exists with another uid" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", TOKEN], "--url: required (or set GRAFANA_URL)"),
        (["--url", "http://127.0.0.1:1"], "--token: required (or set GRAFANA_TOKEN)"),
        (["--url", "grafana:3000", "--token", TOKEN], "is not an http:// or https:// URL"),
        (["--url", "http://admin:pw@127.0.0.1:1", "--token", TOKEN], "credentials do not belong in the URL"),
        (["--url", "http://127.0.0.1:1", "--token", TOKEN, "--retries", "-1"], "--retries:"),
        (["--url", "http://127.0.0.1:1", "--token", TOKEN, "--folder", ""], "--folder:"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboards", "push", "--dir", str(files), *args]) == 2
    _, err = assert_token_hidden(capsys)
    assert message in err


def test_url_and_token_from_the_environment(grafana: FakeGrafana, files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFANA_URL", grafana.url)
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert main(["dashboards", "push", "--dir", str(files), "--no-datasources"]) == 0
    assert grafana.lines()[-1] == "POST /api/dashboards/db"


def test_bad_files_exit_2_before_any_request(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLICKHOUSE_PASSWORD")
    assert run(grafana.url, files) == 2
    _, err = capsys.readouterr()
    assert "environment variable(s) not set: CLICKHOUSE_PASSWORD" in err
    assert "callscope.yaml: datasources[0]" in err

    (files / "broken.json").write_text("{not json")
    assert run(grafana.url, files, "--no-datasources") == 2
    assert "broken.json: not a readable JSON file" in capsys.readouterr().err

    assert run(grafana.url, files.parent / "missing") == 2
    assert "is not a directory" in capsys.readouterr().err
    assert grafana.lines() == []


def test_help_describes_the_command() -> None:
    top = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert top.returncode == 0
    assert "dashboards" in top.stdout
    proc = subprocess.run(
        [*CLI, "dashboards", "push", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    for option in ("--url", "--token", "--folder", "--dir", "--no-datasources", "--retries", "--timeout-secs"):
        assert option in proc.stdout
    bare = subprocess.run([*CLI, "dashboards"], capture_output=True, text=True, timeout=60, check=False)
    assert bare.returncode == 2
    assert "push" in bare.stdout


def test_provisioned_dashboard_is_refused_with_grafanas_reason(
    grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grafana.provisioned.add("callscope-noc")
    assert run(grafana.url, files, "--no-datasources") == 1
    _, err = assert_token_hidden(capsys)
    assert "POST /api/dashboards/db: 400 Cannot save provisioned dashboard" in err
    assert grafana.lines().count("POST /api/dashboards/db") == 1  # a 4xx is not retried


def test_no_answer_in_time(grafana: FakeGrafana, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana.stalled.add("GET /api/search")
    assert run(grafana.url, files, "--timeout-secs", "0.3", "--retries", "0") == 1
    _, err = assert_token_hidden(capsys)
    assert "GET /api/search?type=dash-folder: no answer within 0.3 s (gave up after 1 attempt)" in err
