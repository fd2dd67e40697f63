"""collectors.cdr / .cel / .queue_log in the configuration: defaults, validation, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscope.settings import load_settings
from collectors.cel.config import DEFAULT_COLUMNS
from schemas.errors import ConfigError


def test_defaults() -> None:
    c = load_settings(None, {}).collectors
    assert (c.cdr.enabled, c.cel.enabled, c.queue_log.enabled) == (False, False, False)
    assert c.cdr.path == Path("/var/log/asterisk/cdr-csv/Master.csv")
    assert c.cdr.columns == ()
    assert c.cel.columns == DEFAULT_COLUMNS
    assert c.queue_log.path == Path("/var/log/asterisk/queue_log")
    assert (c.queue_log.timezone, c.queue_log.start_at, c.queue_log.poll_interval_secs) == ("local", "beginning", 0.2)
    assert c.queue_log.node is None


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"cdr": {"timezone": "Mars/Olympus"}}, "collectors.cdr.timezone", "unknown time zone"),
        ({"cdr": {"columns": ["src", "1dst"]}}, "collectors.cdr.columns", "letters, digits"),
        ({"cdr": {"columns": ["src", "src"]}}, "collectors.cdr.columns", "twice"),
        ({"cel": {"columns": ["eventtime", "uniqueid"]}}, "collectors.cel.columns", "eventtype"),
        ({"queue_log": {"start_at": "middle"}}, "collectors.queue_log.start_at", "beginning"),
        ({"queue_log": {"poll_interval_secs": 0}}, "collectors.queue_log.poll_interval_secs", "greater than 0"),
        ({"queue_log": {"node": "pbx 1"}}, "collectors.queue_log.node", "pattern"),
        ({"queue_log": {"max_line_bytes": 10}}, "collectors.queue_log.max_line_bytes", "greater than or equal"),
        ({"cel": {"colums": []}}, "collectors.cel.colums", "unknown option"),
    ],
)
def test_bad_values_name_the_option(overrides: dict[str, object], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"collectors": overrides})
    assert any(p == path and message in m for p, m in err.value.errors), err.value.errors


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_COLLECTORS__QUEUE_LOG__ENABLED", "true")
    monkeypatch.setenv("CALLSCOPE_COLLECTORS__QUEUE_LOG__PATH", "/srv/asterisk/queue_log")
    monkeypatch.setenv("CALLSCOPE_COLLECTORS__CDR__TIMEZONE", "Europe/Paris")
    c = load_settings(None, {}).collectors
    assert c.queue_log.enabled
    assert c.queue_log.path == Path("/srv/asterisk/queue_log")
    assert c.cdr.timezone == "Europe/Paris"


def test_example_file_documents_the_file_collectors() -> None:
    example = Path(__file__).resolve().parents[2] / "callscope.example.yaml"
    settings = load_settings(example)
    c = settings.collectors
    assert c.cdr.path == Path("/var/log/asterisk/cdr-csv/Master.csv")
    assert c.cel.columns == DEFAULT_COLUMNS
    assert c.queue_log.node == "pbx1"
