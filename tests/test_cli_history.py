"""History for people and scripts: `incidents list`, `incidents show`, `stats`, each with
--json, on both databases, from incidents taken through a real service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from responder.cli import app
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, REPO, drain, post, running, sample, settings_for
from tests.logstate import logging_kept

SERVED = [
    "payment-failure-rate.triggered",
    "api-latency.warn",
    "fraud-detection-down.triggered",
    "checkout-error-rate.triggered",
    "payment-failure-rate.recovered",
]
PAYMENTS, LATENCY = "148275309", "148275400"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def invoke(args: list[str], database_url: str) -> Result:
    environment: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
        "RESPONDER_API_TOKEN": None,
        "SLACK_BOT_TOKEN": None,
        "RESPONDER_LOG_LEVEL": "warning",
    }
    return CliRunner().invoke(app, args, env=environment)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.fixture(params=BACKENDS)
def served_url(request: pytest.FixtureRequest, samples_dir: Path) -> str:
    """Four incidents (one resolved), the latency one acknowledged by alice through the API."""

    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            for name in SERVED:
                assert post(client, sample(samples_dir, name)).status_code == 202
                drain(service)
            listed = client.get("/api/incidents", headers=AUTH).json()["items"]
            latency = next(i["id"] for i in listed if i["monitor_id"] == LATENCY)
            answer = client.post(
                f"/api/incidents/{latency}/acknowledge", json={"actor": "alice"}, headers=AUTH
            )
            assert answer.status_code == 202, answer.text
            drain(service)

    return restore(request, request.param, "history-served", build)


def _ids(url: str) -> dict[str, int]:
    listed = invoke(["incidents", "list", "--json"], url)
    assert listed.exit_code == 0, listed.output
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    return {item["monitor_id"]: item["id"] for item in items}


def test_list_is_a_table_with_utc_times_status_and_who_acknowledged(served_url: str) -> None:
    result = invoke(["incidents", "list"], served_url)
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "PRI",
        "OPENED",
        "SERVICE",
        "TEAM",
        "ACKNOWLEDGED",
        "BY",
        "TITLE",
        "(CURRENT)",
    ]
    ids = _ids(served_url)
    by_id = {int(row.split()[0]): row for row in rows}
    latency = by_id[ids[LATENCY]]
    assert latency.split()[1:3] == ["acknowledged", "P3"]
    assert "2026-11-22 22:00:00 UTC" in latency
    assert " api " in latency and " platform " in latency
    assert "alice (api)" in latency
    payments = by_id[ids[PAYMENTS]]
    assert payments.split()[1] == "resolved"
    # The current title is the recovery's, not the opening "[Triggered]" one.
    assert payments.endswith("[Recovered] High Payment Failure Rate")


def test_list_json_is_one_object_a_line_with_the_current_title(served_url: str) -> None:
    result = invoke(["incidents", "list", "--json", "--status", "acknowledged"], served_url)
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["monitor_id"] for item in items] == [LATENCY]
    assert items[0]["acknowledged_by"] == "alice (api)"
    assert items[0]["current_title"].startswith("[Warn")


@pytest.mark.parametrize("status", ["bogus", "Resolved", "open"])
def test_an_unknown_status_is_an_error_naming_the_valid_ones(served_url: str, status: str) -> None:
    result = invoke(["incidents", "list", "--status", status], served_url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"unknown status {status!r}: use one of triggered, acknowledged, resolved"
    )


def test_show_tells_the_story_with_runs_as_they_stand(served_url: str) -> None:
    number = _ids(served_url)[PAYMENTS]
    result = invoke(["incidents", "show", str(number)], served_url)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"Incident {number}  RESOLVED  P1  [Recovered] High Payment")
    assert "opened    2026-11-22 22:00:00 UTC" in text
    assert "resolved  2026-11-22 22:23:00 UTC: recovered (after 23m)" in text
    # Told as the incident page tells it, with why the other playbooks did not match.
    assert "Playbooks matched: payment-failure-rate (" in text
    assert "fraud-detection-down did not match: tag 'team' is 'payments'" in text
    assert "Planned pagerduty.trigger (playbook payment-failure-rate, step 0)" in text
    # Why each action was skipped, with the variables to set.
    assert "slack.post skipped (attempt 1): integration not configured: set SLACK_BOT_TOKEN" in (
        text
    )
    actions = text.split("Actions (as they stand now)")[1].splitlines()
    trigger = next(line for line in actions if " pagerduty.trigger " in line)
    assert trigger.split()[4] == "skipped"  # not the "running" the event saw at planning
    assert "set PAGERDUTY_ROUTING_KEY" in trigger


def test_show_names_who_acknowledged(served_url: str) -> None:
    number = _ids(served_url)[LATENCY]
    result = invoke(["incidents", "show", str(number)], served_url)
    assert result.exit_code == 0, result.output
    assert "acked     " in result.stdout and " by alice (api) (after " in result.stdout
    assert "Incident acknowledged: triggered → acknowledged (Warn) by alice (api)" in result.stdout


def test_show_json_event_outcomes_agree_with_the_runs(served_url: str) -> None:
    number = _ids(served_url)[PAYMENTS]
    result = invoke(["incidents", "show", "--json", str(number)], served_url)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    states = {run["id"]: run["state"] for run in detail["actions"]}
    seen = [a for event in detail["events"] for a in event["outcome"]["actions"]]
    assert seen, "the events name their runs"
    assert all(action["state"] == states[action["id"]] for action in seen), seen
    assert {action["state"] for action in seen} == {"skipped"}
    kinds = [moment["kind"] for moment in detail["story"]]
    assert kinds.index("incident.opened") < kinds.index("incident.resolved")


def test_stats_per_service_and_team(served_url: str) -> None:
    result = invoke(["stats", "--json"], served_url)
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.stdout)
    assert figures["incidents"] == 4
    assert figures["by_status"] == {"triggered": 2, "acknowledged": 1, "resolved": 1}
    assert figures["by_service"]["payment"] == {
        "incidents": 1,
        "mtta_seconds": None,
        "mttr_seconds": 1380.0,
    }
    assert figures["by_team"]["platform"]["incidents"] == 1
    assert figures["by_team"]["platform"]["mtta_seconds"] > 0
    assert figures["mttr_seconds"] == 1380.0

    table = invoke(["stats"], served_url)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "incidents: 4 (1 acknowledged, 1 resolved, 2 triggered)"
    assert "MTTR (mean time to resolve): 23m" in lines
    payment = next(line for line in lines if line.startswith("payment "))
    assert payment.split() == ["payment", "1", "-", "23m"]
    assert any(line.split()[:1] == ["TEAM"] for line in lines)


def test_stats_since_refuses_a_time_without_zone(served_url: str) -> None:
    result = invoke(["stats", "--since", "2026-11-22T00:00:00"], served_url)
    assert result.exit_code == 1
    assert "add a time zone" in result.stderr
    later = invoke(["stats", "--json", "--since", "2030-01-01T00:00:00Z"], served_url)
    assert json.loads(later.stdout)["incidents"] == 0
