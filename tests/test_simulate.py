"""`responder playbooks test` over a sequence of deliveries: the real pipeline on a scratch
database, shown delivery by delivery, with nothing sent and nothing of ours opened."""

from __future__ import annotations

import json
import re
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from responder.cli.simulated import outcome_lines as _outcome_lines
from responder.intake.datadog import normalise
from responder.pipeline.simulate import Outcome
from tests.test_cli import (
    UNREACHABLE,
    _restore_logging,  # noqa: F401  (autouse: the CLI configures logging)
    invoke,
)

FAMILY = "fraud-detection-down"
SEQUENCE = [f"{FAMILY}.triggered", f"{FAMILY}.renotify", f"{FAMILY}.recovered"]
FIRST = ["pagerduty.trigger", "datadog.incident", "slack.post"]


def run(args: list[str], tmp_path: Path, **env: str | None) -> Result:
    return invoke(["playbooks", "test", *args], f"sqlite:///{tmp_path}/never.db", **env)


def files(samples_dir: Path, names: list[str]) -> list[str]:
    return [str(samples_dir / f"{name}.json") for name in names]


def blocks(stdout: str) -> list[list[str]]:
    """The output cut into one list of lines per delivery."""
    out: list[list[str]] = []
    for line in stdout.splitlines():
        if line.startswith("#"):
            out.append([])
        out[-1].append(line)
    return out


def parsed(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def actions(delivery: dict[str, Any], key: str) -> list[str]:
    return [run["action"] for run in delivery[key]]


def test_a_page_once_then_thread_replies_then_resolves(tmp_path: Path, samples_dir: Path) -> None:
    result = run(files(samples_dir, SEQUENCE), tmp_path)
    assert result.exit_code == 0, result.output
    first, renotify, recovered = blocks(result.stdout)
    assert first[0].startswith(
        f"#1 {FAMILY}.triggered.json  Triggered '[Triggered] Fraud Detection System Down' "
        "priority=P1 date=2026-11-22T22:00:00+00:00"
    )
    assert first[1] == "   incident 1 opened (key 148275511||7716548234000003333)"
    assert first[2] == f"   playbooks: {FAMILY} (new)"
    assert [line.split()[1] for line in first[3:]] == FIRST
    assert all(line.startswith("   -> ") for line in first[3:])
    # The Renotify pages nobody, and 30 minutes in it is within the hour of the first
    # message: its thread reply and timeline entry are suppressed, each with the reason.
    why = "reminder interval: the last went out 30m before this one (at most one per 1h)"
    assert renotify[1:] == [
        "   incident 1 updated: triggered -> triggered",
        "   playbooks: not routed: a repeat of an open incident: playbooks run once per incident",
        f"   suppressed: datadog.incident_timeline: {why}",
        f"   suppressed: slack.reply: {why}",
    ]
    assert recovered[1:] == [
        "   incident 1 resolved: triggered -> resolved",
        "   playbooks: none matched",
        '   follow-up -> pagerduty.resolve {"routing_key": null} '
        "(to pagerduty.trigger, run 1 of #1)",
        "   follow-up -> datadog.incident_resolve {} (to datadog.incident, run 2 of #1)",
        '   follow-up -> slack.resolve {"channel": "#security-alerts"} '
        "(to slack.post, run 3 of #1)",
    ]
    assert result.stdout.count("pagerduty.trigger") == 2  # its step, and its resolve's parent


def test_json_lines_out_one_object_per_delivery(tmp_path: Path, samples_dir: Path) -> None:
    # Reminders every 10 minutes: the Renotify (30 minutes in) is told.
    args = ["--json", *files(samples_dir, SEQUENCE)]
    first, renotify, recovered = parsed(run(args, tmp_path, RESPONDER_REMINDER_INTERVAL="10m"))
    assert [d["delivery"] for d in (first, renotify, recovered)] == [1, 2, 3]
    assert first["alert"]["transition"] == "Triggered"
    assert first["incident"]["id"] == renotify["incident"]["id"] == 1
    assert recovered["incident"]["status"] == "resolved"
    assert actions(first, "actions") == FIRST
    assert first["follow_ups"] == []
    assert actions(renotify, "actions") == []
    assert actions(renotify, "follow_ups") == ["datadog.incident_timeline", "slack.reply"]
    assert actions(recovered, "actions") == []
    assert actions(recovered, "follow_ups") == [
        "pagerduty.resolve",
        "datadog.incident_resolve",
        "slack.resolve",
    ]
    assert [f["parent"] for f in renotify["follow_ups"]] == [
        {"run_id": 2, "action": "datadog.incident", "delivery": 1},
        {"run_id": 3, "action": "slack.post", "delivery": 1},
    ]
    matched = [r for r in renotify["records"] if r["kind"] == "playbooks.matched"]
    assert [r["data"]["not_routed"] for r in matched] == [
        "a repeat of an open incident: playbooks run once per incident"
    ]
    kinds = [r["kind"] for r in first["records"]]
    assert kinds[:3] == ["event.received", "incident.opened", "playbooks.matched"]
    assert kinds[3:] == ["run.planned"] * 3


def test_a_jsonl_file_holds_one_delivery_a_line(tmp_path: Path, samples_dir: Path) -> None:
    lines = [json.dumps(json.loads(Path(f).read_text())) for f in files(samples_dir, SEQUENCE)]
    sequence = tmp_path / "storm.jsonl"
    sequence.write_text(f"{lines[0]}\n{lines[1]}\n\n{lines[2]}\n")  # a blank line is skipped
    from_lines = parsed(run(["--json", str(sequence)], tmp_path))
    from_files = parsed(run(["--json", *files(samples_dir, SEQUENCE)], tmp_path))
    assert [d["source"] for d in from_lines] == [f"{sequence}:1", f"{sequence}:2", f"{sequence}:4"]
    for line, file in zip(from_lines, from_files, strict=True):
        assert actions(line, "actions") == actions(file, "actions")
        assert actions(line, "follow_ups") == actions(file, "follow_ups")
        assert [r["kind"] for r in line["records"]] == [r["kind"] for r in file["records"]]
    text = run([str(sequence)], tmp_path)
    assert [b[0].split()[1] for b in blocks(text.stdout)] == [
        "storm.jsonl:1",
        "storm.jsonl:2",
        "storm.jsonl:4",
    ]


def test_a_recovery_first_is_kept_and_its_trigger_is_late(
    tmp_path: Path, samples_dir: Path
) -> None:
    names = [f"{FAMILY}.recovered", f"{FAMILY}.triggered"]
    result = run(files(samples_dir, names), tmp_path)
    assert result.exit_code == 0, result.output
    recovery, trigger = blocks(result.stdout)
    assert recovery[1:] == [
        "   incident 1 opened (key 148275511||7716548234000003333), resolved: the recovery"
        " arrived before its trigger: kept, resolved",
        "   playbooks: not routed: the recovery arrived before its trigger: nothing to undo",
    ]
    # Datadog dated the trigger first: it is late, and pages nobody.
    assert trigger[1:] == ["   late: its alert cycle already recovered"]
    kept, late = parsed(run(["--json", *files(samples_dir, names)], tmp_path))
    assert kept["incident"]["status"] == "resolved"
    assert late["actions"] == late["follow_ups"] == []
    assert late["records"][-1]["kind"] == "event.late"
    assert late["records"][-1]["data"]["reason"] == "its alert cycle already recovered"


def test_a_redelivery_is_recognised_and_does_nothing(tmp_path: Path, samples_dir: Path) -> None:
    names = [f"{FAMILY}.triggered", f"{FAMILY}.triggered"]
    result = run(files(samples_dir, names), tmp_path)
    assert result.exit_code == 0, result.output
    _, again = blocks(result.stdout)
    assert again[1:] == ["   redelivery of #1: recognised, nothing done again"]


def test_a_delayed_step_is_cancelled_by_the_recovery(tmp_path: Path, samples_dir: Path) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "later.yaml").write_text(
        "name: later\n"
        "match: {tags: {team: security}}\n"
        "actions:\n"
        "  - slack.post: {channel: '#now'}\n"
        "  - slack.post: {channel: '#later', after: 10m, if: incident.open}\n"
    )
    names = [f"{FAMILY}.triggered", f"{FAMILY}.recovered"]
    result = run(files(samples_dir, names), tmp_path, RESPONDER_PLAYBOOKS=str(folder))
    assert result.exit_code == 0, result.output
    trigger, recovery = blocks(result.stdout)
    assert trigger[3:] == [
        '   -> slack.post {"channel": "#now"}',
        '   -> slack.post after 10m if incident.open {"channel": "#later"}',
    ]
    assert recovery[1:] == [
        "   incident 1 resolved: triggered -> resolved",
        "   playbooks: none matched",
        '   follow-up -> slack.resolve {"channel": "#now"} (to slack.post, run 1 of #1)',
        "   cancelled: slack.post (run 2, later)",
    ]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local port the vendors' URLs point at: any call to a vendor would knock here."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def test_nothing_is_sent_nor_kept_with_every_credential_set(
    tmp_path: Path, samples_dir: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the throwaway database goes
    made: list[Path] = []
    real = tempfile.TemporaryDirectory

    def spied(*args: Any, **kwargs: Any) -> tempfile.TemporaryDirectory[str]:
        folder = real(*args, **kwargs)
        made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spied)
    vendor = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    result = invoke(
        ["playbooks", "test", "--json", *files(samples_dir, SEQUENCE)],
        UNREACHABLE,  # DATABASE_URL: opening it would fail the command
        SLACK_BOT_TOKEN="xoxb-simulate-0123456789",
        PAGERDUTY_ROUTING_KEY="R0UT1NGKEY0123456789",
        PAGERDUTY_API_TOKEN="pd-token-0123456789",
        PAGERDUTY_FROM_EMAIL="oncall@example.com",
        DD_API_KEY="dd-api-key-0123456789",
        DD_APP_KEY="dd-app-key-0123456789",
        RESPONDER_SLACK_API_URL=vendor,
        RESPONDER_PAGERDUTY_EVENTS_URL=vendor,
        RESPONDER_PAGERDUTY_API_URL=vendor,
        RESPONDER_DATADOG_API_URL=vendor,
    )
    deliveries = parsed(result)
    states = {run["state"] for d in deliveries for run in d["actions"] + d["follow_ups"]}
    assert states == {"pending"}  # planned, never started
    # three steps, three resolves; the Renotify's reminders are within the hour: suppressed
    assert sum(len(d["actions"]) + len(d["follow_ups"]) for d in deliveries) == 6
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody called
    assert [folder.parent for folder in made] == [scratch]
    assert list(scratch.iterdir()) == []  # the throwaway database is gone
    assert "xoxb-simulate" not in result.output and "R0UT1NGKEY" not in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{}\nnot JSON\n", "storm.jsonl:2: unreadable body: not valid JSON"),
        ("{}\n[1]\n", "storm.jsonl:2: expected a JSON object"),
        ("\n\n", "storm.jsonl: no deliveries in it"),
    ],
    ids=["bad-line", "array-line", "empty"],
)
def test_a_bad_line_is_named_and_nothing_is_simulated(
    tmp_path: Path, samples_dir: Path, content: str, says: str
) -> None:
    good = json.dumps(json.loads((samples_dir / f"{FAMILY}.triggered.json").read_text()))
    sequence = tmp_path / "storm.jsonl"
    sequence.write_text(content.replace("{}", good, 1))
    result = run([*files(samples_dir, SEQUENCE[:1]), str(sequence)], tmp_path)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert says in result.stderr
    assert result.stdout == ""  # the good deliveries before it were not simulated either


def test_every_unreadable_input_is_named(tmp_path: Path, samples_dir: Path) -> None:
    missing = tmp_path / "missing.json"
    bad = tmp_path / "bad.json"
    bad.write_text('{"alert": {"id": "1"}}')
    result = run([str(missing), *files(samples_dir, SEQUENCE[:1])], tmp_path)
    assert result.exit_code == 1
    assert f"{missing}: No such file or directory" in result.stderr
    result = run([*files(samples_dir, SEQUENCE[:1]), str(bad)], tmp_path)
    assert result.exit_code == 1
    assert f"{bad}: payload has no title" in result.stderr
    assert result.stdout == ""


def test_records_of_any_kind_show_with_their_reasons(samples_dir: Path) -> None:
    """Kinds other stages add (late deliveries, suppressed runs, flapping): a kind with a
    renderer of its own shows its reason, any other shows as it is."""
    payload = json.loads((samples_dir / f"{FAMILY}.renotify.json").read_text())
    records = [
        ("event.late", {"reason": "older than the incident's last event"}),
        ("run.suppressed", {"action": "slack.reply", "reason": "reminder within 30m"}),
        ("incident.flapping", {"reason": "4 transitions in 10m"}),
        ("incident.grouped", {"into": 7, "reason": "same service"}),
        ("incident.updated", {"shape": "changed"}),  # a known kind, fields renamed since
    ]
    outcome = Outcome(
        number=3,
        source="x/storm.jsonl:3",
        alert=normalise(payload, datetime.now(UTC)),
        event_id=3,
        redelivery_of=None,
        incident=None,
        records=[
            {"kind": kind, "data": data, "incident_id": 1, "run_id": None} for kind, data in records
        ],
        planned=[],
        not_matched=[],
    )
    lines = _outcome_lines(outcome, verbose=False)
    assert re.match(r"#3 storm\.jsonl:3  Renotify ", lines[0])
    assert lines[1:] == [
        "   late: older than the incident's last event",
        "   suppressed: slack.reply: reminder within 30m",
        '   incident.flapping: {"reason": "4 transitions in 10m"}',
        '   incident.grouped: {"into": 7, "reason": "same service"}',
        '   incident.updated: {"shape": "changed"}',
    ]
