"""``callscope replay --format ami``: wire transcripts and JSON lists through the collector's envelope path."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from callscope.formats import FORMATS, Item, detect
from callscope.replay import replay_embedded, resolve_formats
from callscope.settings import StoreConfig, load_settings
from callscope.store.client import Store
from callscope.telemetry import Telemetry
from schemas.envelope import AmiEnvelope, decode
from tests.ami.corpus import CACOFONISK, PANORAMISK, recordings, transcripts
from tests.corpus import corpus_file

AMI = FORMATS["ami"]


def _read(path: Path, node: str = "ast-9") -> list[Item]:
    return list(AMI.read(path, node=node, role="logic"))


def _envs(items: list[Item]) -> list[AmiEnvelope]:
    out = []
    for item in items:
        if item.envelope is not None:
            env = decode(item.envelope)
            assert isinstance(env, AmiEnvelope)
            assert item.kind == "ami"
            assert item.key == env.key
            out.append(env)
    return out


def test_both_forms_are_detected_from_the_content() -> None:
    for path in [*transcripts(), *recordings()]:
        assert detect(path) is AMI, path.name
    assert not AMI.sniff(b'{"v":1,"kind":"ami","body":{}}\n')  # callscope's JSON lines
    assert not AMI.sniff(b'"","1001","2002","default"\n')  # a CDR line
    assert not AMI.sniff(b"1366720340|1366720340.12|q1|NONE|ENTERQUEUE||1001|1\n")  # queue_log
    assert AMI.sniff(b"\r\n  \r\naction: command\r\n")
    assert AMI.sniff(b' [\n {"Event": "Hangup"}]')


def test_transcripts_give_their_events_and_dead_letter_their_garbage() -> None:
    items = _read(corpus_file(f"{PANORAMISK}/agent_loggued_in.yaml"))
    envs = _envs(items)
    assert len(envs) == 147  # events only: the 8 Ping responses and 8 actions are not events
    errors = [i for i in items if i.error is not None]
    assert [(e.error.reason, e.raw) for e in errors if e.error is not None] == [
        ("garbage", b"[218 bytes missing in capture file]"),
        ("garbage", b"[1613 bytes missing in capture file]"),
    ]
    assert {e.node for e in envs} == {"ast-9"}
    assert {e.body.dialect for e in envs} == {"asterisk11"}  # channel events without Linkedid
    assert envs[0].ts.year == 2014  # the replay clock starts at the first Uniqueid's time


def test_asterisk11_transcript_replay() -> None:
    envs = _envs(_read(corpus_file(f"{PANORAMISK}/originate_with_events.yaml")))
    assert len(envs) == 748
    assert {e.body.dialect for e in envs} == {"asterisk11"}
    events = Counter(e.body.event for e in envs)
    assert events["VarSet"] == 269
    assert events["Newexten"] == 136
    assert events["CEL"] == 20
    assert events["Dial"] == 4
    assert events["Bridge"] == 6


def test_json_recordings_replay_in_order_with_stable_ids_and_times() -> None:
    path = corpus_file(f"{CACOFONISK}/xfer_attended/xfer_abacbc.json")
    raw = orjson.loads(path.read_bytes())
    items = _read(path)
    envs = _envs(items)
    assert len(envs) == len(raw)
    assert {e.body.dialect for e in envs} == {"asterisk13"}
    assert all("content" not in e.body.fields for e in envs)  # the recorder's key is dropped
    times = [e.ts for e in envs]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    first_id = next(e for e in raw if "Uniqueid" in e)["Uniqueid"]
    assert int(times[0].timestamp()) <= int(first_id.rsplit("-", 1)[1].split(".")[0]) <= int(times[-1].timestamp())
    again = _envs(_read(path))
    assert [(e.id, e.ts, e.received) for e in again] == [(e.id, e.ts, e.received) for e in envs]
    assert len({e.id for e in envs}) == len(envs)
    other = _envs(_read(corpus_file(f"{CACOFONISK}/xfer_attended/xfer_abbcac.json")))
    assert not {e.id for e in other} & {e.id for e in envs}  # same events in another file: other ids


def test_every_recording_replays_whole() -> None:
    for path in recordings():
        envs = _envs(_read(path))
        assert len(envs) == path.read_bytes().count(b'"Event": "'), path.name


def test_bad_json_recordings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"Event": "Newchannel", "Uniqueid": "1.1"}, 42, {"Event": "Hangup", "Cause": 16}, {"X": [1]}]')
    items = _read(bad)
    assert [i.error.reason if i.error else None for i in items] == [None, "json_event", None, "json_event"]
    assert decode(items[2].envelope).body.fields["Cause"] == "16"  # type: ignore[arg-type,union-attr]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"Event": "Newchannel"')
    (item,) = _read(broken)
    assert item.error is not None
    assert item.error.reason == "json"


async def test_replay_into_the_embedded_pipeline_ends_in_ami_events(
    tmp_path: Path, store_config: StoreConfig, store: Store
) -> None:
    files = [
        corpus_file(f"{PANORAMISK}/originate_with_events.yaml"),
        corpus_file(f"{PANORAMISK}/agent_loggued_in.yaml"),
        corpus_file(f"{CACOFONISK}/queue/queue_attn_xfer.json"),
    ]
    settings = load_settings(
        None,
        {
            "node": "ast-9",
            "data_dir": str(tmp_path),
            "api": {"listen": "127.0.0.1:0"},
            "store": {"dsn": store_config.dsn, "database": store_config.database, "batch_max_age_secs": 0.05},
        },
    )
    resolved = resolve_formats(files, "ami")
    assert [fmt.name for _, fmt in resolve_formats(files, None)] == ["ami", "ami", "ami"]
    result = await replay_embedded(resolved, settings, Telemetry(node="ast-9"), show_progress=False)
    assert (result.accepted, result.deadlettered) == (748 + 147 + 99, 2)
    rows = store.query(
        "SELECT count() AS n, uniqExact(id) AS ids, countIf(linkedid != '') AS linked FROM ami_events FINAL"
    )
    linked = sum(
        any(k.lower() == "linkedid" and v for k, v in e.body.fields.items()) for f in files for e in _envs(_read(f))
    )
    assert rows == [{"n": 994, "ids": 994, "linked": linked}]
    assert linked > 80
    dead = store.query("SELECT count() AS n FROM deadletters")
    assert dead[0]["n"] == 2
    # Replaying again stores nothing new: same ids, same times.
    await replay_embedded(resolved, settings, Telemetry(node="ast-9"), show_progress=False)
    again = store.query("SELECT count() AS n FROM ami_events FINAL")
    assert again == [{"n": 994}]
