"""A first run that explains itself: what `serve` prints before serving (the API token made
once and kept, the database masked, the playbooks, each integration with what to set), the
one-line answer for a database that cannot be opened, logs that narrate with incident ids,
and the helper commands (--version, datadog template, playbooks schema)."""

from __future__ import annotations

import json
import logging
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import structlog
import uvicorn
import yaml
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from responder import memory
from responder.cli import app
from responder.logs import configure
from responder.redact import Redactor
from tests.databases import PostgresStates
from tests.harness import REPO, TOKEN, drain, post, running, sample, settings_for
from tests.logstate import logging_kept

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1


def invoke(args: list[str], database_url: str, **env: str | None) -> Result:
    environment: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
        "RESPONDER_WEBHOOK_TOKEN": TOKEN,
        "RESPONDER_API_TOKEN": None,
        "SLACK_BOT_TOKEN": None,
        "DD_API_KEY": None,
        "DD_APP_KEY": None,
        "PAGERDUTY_ROUTING_KEY": None,
        "PAGERDUTY_API_TOKEN": None,
        "PAGERDUTY_FROM_EMAIL": None,
        "RESPONDER_LOG_LEVEL": "info",
        "RESPONDER_LOG_FORMAT": None,
        "PORT": None,
        **env,
    }
    return CliRunner().invoke(app, args, env=environment)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.fixture
def served_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """`serve` runs up to uvicorn, which hands back at once; the apps it was given."""
    apps: list[Any] = []

    def run(application: Any, **options: Any) -> None:
        apps.append(application)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(memory, "freeze_startup_heap", lambda: None)
    interval = sys.getswitchinterval()
    try:
        yield apps
    finally:
        sys.setswitchinterval(interval)


def test_serve_makes_an_api_token_once_and_keeps_it(tmp_path: Path, served_apps: list[Any]) -> None:
    url = f"sqlite:///{tmp_path}/responder.db"
    first = invoke(["serve", "--no-worker", "--port", "8123"], url)
    assert first.exit_code == 0, first.output
    kept = tmp_path / "responder.db.api-token"
    token = kept.read_text().strip()
    assert len(token) >= 40
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    lines = first.stdout.splitlines()
    assert f"  API token   {token}" in lines
    assert f"generated, kept in {kept}" in first.stdout
    assert "  URL         http://127.0.0.1:8123/" in lines
    assert token not in first.stderr  # shown once, on stdout: never in the logs

    second = invoke(["serve", "--no-worker", "--port", "8123"], url)
    assert second.exit_code == 0, second.output
    assert kept.read_text().strip() == token
    # Not shown again: stdout is often a log stream too. The file says where it is.
    assert token not in second.stdout and token not in second.stderr
    assert f"  API token   kept in {kept}" in second.stdout and "generated" not in second.stdout

    # The token shown is the one the API takes.
    with TestClient(served_apps[-1]) as client:
        assert client.get("/api/incidents").status_code == 401
        ok = client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text


def test_serve_lists_playbooks_and_integrations_with_what_to_set(
    tmp_path: Path, served_apps: list[Any]
) -> None:
    result = invoke(
        ["serve", "--no-worker"], f"sqlite:///{tmp_path}/r.db", SLACK_BOT_TOKEN="xoxb-secret-77"
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "xoxb-secret-77" not in out and "xoxb-secret-77" not in result.stderr
    assert "  database    sqlite:///" in out
    assert "  playbooks   6 from " in out and "payment-failure-rate" in out
    listed = [
        line for line in out.split("  integrations\n")[1].splitlines() if line.startswith("    ")
    ]
    integrations = {line.split("  ")[2].strip(): line for line in listed}
    assert "skipped: set DD_API_KEY and DD_APP_KEY" in integrations["Datadog"]
    assert "ok: " in integrations["Slack"]
    assert "skipped: set PAGERDUTY_ROUTING_KEY" in integrations["PagerDuty"]
    assert "set PAGERDUTY_API_TOKEN and PAGERDUTY_FROM_EMAIL" in integrations["PagerDuty notes"]
    assert "skipped: set SLACK_SIGNING_SECRET" in integrations["Slack answers"]
    assert "skipped: set PAGERDUTY_WEBHOOK_SECRET" in integrations["PagerDuty answers"]


@pytest.fixture
def pg_migrated(postgres_states: PostgresStates) -> str:
    """The session's PostgreSQL database, empty at the newest schema."""
    return postgres_states.restore()


def test_serve_with_a_set_token_and_a_password_shows_neither(
    pg_migrated: str, served_apps: list[Any]
) -> None:
    with_password = make_url(pg_migrated).set(password="pw-Secret-91")
    url = with_password.render_as_string(hide_password=False)  # trust auth: ignored
    result = invoke(["serve", "--no-worker"], url, RESPONDER_API_TOKEN="api-Secret-92")
    assert result.exit_code == 0, result.output
    assert "pw-Secret-91" not in result.output and "api-Secret-92" not in result.output
    assert ":***@127.0.0.1" in result.stdout
    assert "  API token   from RESPONDER_API_TOKEN" in result.stdout


def test_serve_on_postgres_without_a_token_says_to_set_one(
    pg_migrated: str, served_apps: list[Any]
) -> None:
    result = invoke(["serve", "--no-worker"], pg_migrated)
    assert result.exit_code == 0, result.output
    assert "  API token   none: set RESPONDER_API_TOKEN to use the API" in result.stdout


@pytest.mark.parametrize("args", [["incidents", "list"], ["db", "upgrade"], ["serve"]])
def test_a_missing_postgres_database_is_one_line(pg_url: str, args: list[str]) -> None:
    missing = make_url(pg_url).set(database="responder_no_such_database_4711")
    result = invoke(args, missing.render_as_string(hide_password=False))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("database 'responder_no_such_database_4711' does not exist")
    assert "createdb" in lines[0] and "DATABASE_URL" in lines[0]
    assert "Traceback" not in result.output


def test_an_unreachable_server_is_one_line() -> None:
    result = invoke(["incidents", "list"], UNREACHABLE)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "cannot reach PostgreSQL at 127.0.0.1:1: start it, or point DATABASE_URL "
        "(postgresql+psycopg://postgres@127.0.0.1:1/nothing) at a running server"
    )


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("responder ")


def test_datadog_template_is_the_packaged_one() -> None:
    result = CliRunner().invoke(app, ["datadog", "template"])
    assert result.exit_code == 0, result.output
    template = REPO / "responder" / "intake" / "webhook-template.json"
    assert json.loads(result.stdout) == json.loads(template.read_text())
    assert '"$ALERT_TRANSITION"' in result.stdout


def _schema(tmp_path: Path) -> Any:
    result = invoke(["playbooks", "schema"], f"sqlite:///{tmp_path}/r.db")
    assert result.exit_code == 0, result.output
    return jsonschema_rs.validator_for(json.loads(result.stdout))


def test_playbooks_schema_takes_every_example_playbook(tmp_path: Path) -> None:
    validator = _schema(tmp_path)
    documents = [
        doc
        for path in sorted((REPO / "playbooks").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None and path.name != "maintenance.yaml"
    ]
    assert len(documents) >= 5
    for doc in documents:
        assert validator.is_valid(doc), [e.message for e in validator.iter_errors(doc)]


@pytest.mark.parametrize(
    "step",
    [
        {"slack.post": {"chanel": "#x"}},  # a misspelt param
        {"slack.pots": {"channel": "#x"}},  # an unknown action
        {"slack.post": {"channel": "#x", "after": "soon"}},  # not a duration
        {"slack.post": {"channel": "#x", "if": "incident.closed"}},  # no such condition
        {"datadog.incident": {"severity": "SEV-9"}},  # not one of its values
    ],
)
def test_playbooks_schema_flags_mistakes(tmp_path: Path, step: dict[str, Any]) -> None:
    validator = _schema(tmp_path)
    good = {"name": "x", "match": {"tags": {"service": "pay*"}}, "actions": []}
    assert validator.is_valid({**good, "actions": [{"slack.post": {"channel": "#x"}}]})
    assert validator.is_valid(
        {**good, "actions": [{"slack.post": {"channel": "#x", "after": "10m"}}]}
    )
    assert not validator.is_valid({**good, "actions": [step]})
    assert not validator.is_valid({**good, "matcch": {}})


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_logs_narrate_each_step_with_its_incident(
    migrated_url: str, samples_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger().handlers.clear()
    configure("info", Redactor([]), "json")
    with running(settings_for(migrated_url)) as (service, client):
        assert post(client, sample(samples_dir, "payment-failure-rate.triggered")).status_code
        drain(service)
    lines = _lines(capsys.readouterr().err)
    told = {line["event"]: line for line in lines}
    for kind in ("event.received", "incident.opened", "playbooks.matched", "run.planned"):
        assert told[kind]["incident_id"] == 1, (kind, lines)
    skipped = [line for line in lines if line["event"] == "run.skipped"]
    assert {line["action"] for line in skipped} >= {"slack.post", "datadog.incident"}
    assert all(line["incident_id"] == 1 for line in skipped)
    slack = next(line for line in skipped if line["action"] == "slack.post")
    assert slack["reason"] == "integration not configured: set SLACK_BOT_TOKEN"
    assert all({"timestamp", "level", "event"} <= set(line) for line in lines)


def test_text_logs_are_one_format_for_ours_and_the_libraries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger().handlers.clear()
    configure("info", Redactor([]), "text")
    structlog.get_logger("responder").info("incident.opened", incident_id=7)
    logging.getLogger("tests.a_library").info("Library says")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "[info     ] incident.opened" in err[0] and "incident_id=7" in err[0]
    assert "[info     ] Library says" in err[1] and "logger=tests.a_library" in err[1]
    assert not any(line.startswith("{") for line in err)


def _renderer() -> Any:
    return structlog.get_config()["processors"][-1]


def test_log_format_flag_and_variable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    assert invoke(["--log-format", "text", "stats"], url).exit_code == 0
    assert isinstance(_renderer(), structlog.dev.ConsoleRenderer)
    assert invoke(["stats"], url).exit_code == 0  # the flag is not remembered
    assert isinstance(_renderer(), structlog.processors.JSONRenderer)
    assert invoke(["stats"], url, RESPONDER_LOG_FORMAT="text").exit_code == 0
    assert isinstance(_renderer(), structlog.dev.ConsoleRenderer)
    assert invoke(["--log-format", "xml", "stats"], url).exit_code == 2
