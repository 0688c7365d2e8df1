"""The `responder` command line, driven in-process with settings from the environment."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from responder.cli import app
from responder.store.db import create_engine
from responder.store.migrate import is_current, schema_state
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, REPO, drain, post, running, sample, settings_for
from tests.logstate import logging_kept

PAYMENT_SAMPLE = "payment-failure-rate.triggered"
HANG_SECONDS = 60  # a refusal takes well under a second
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1
SERVED = [
    "payment-failure-rate.triggered",
    "api-latency.warn",
    "fraud-detection-down.triggered",
    "checkout-error-rate.triggered",
    "payment-failure-rate.recovered",
]


def invoke(args: list[str], database_url: str, **env: str | None) -> Result:
    """Run `responder ARGS` with only the settings given here (None unsets a variable)."""
    environment: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
        "RESPONDER_WEBHOOK_TOKEN": None,
        "RESPONDER_API_TOKEN": None,
        "SLACK_BOT_TOKEN": None,
        "RESPONDER_LOG_LEVEL": "warning",
        "PORT": None,
        **env,
    }
    return CliRunner().invoke(app, args, env=environment)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with logging_kept():
        yield


class Hung(BaseException):
    """Not an Exception, so neither the worker loop nor the CLI runner can swallow it."""


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Stops a command that started serving instead of refusing, so the test fails, not hangs.

    A server or worker installs its own SIGTERM handler: the first expiry calls it for a
    graceful stop; anything still running at the second expiry is interrupted. Meanwhile
    SIGTERM is a no-op of ours, which uvicorn re-raises after such a stop.
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def ignore(signum: int, frame: FrameType | None) -> None:
        pass

    def expire(signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler) and handler is not ignore:
            signal.alarm(HANG_SECONDS)
            handler(signal.SIGTERM, frame)
            return
        raise Hung("the command started instead of refusing")

    signal.signal(signal.SIGTERM, ignore)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.fixture(params=BACKENDS)
def served_url(request: pytest.FixtureRequest, samples_dir: Path) -> str:
    """A database holding SERVED, taken through a real service once per session and
    database (tests.databases); each test gets a copy."""

    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            for name in SERVED:
                assert post(client, sample(samples_dir, name)).status_code == 202
                drain(service)

    return restore(request, request.param, "cli-served", build)


@pytest.fixture
def served(served_url: str) -> dict[str, Any]:
    """The incidents on `served_url`, as the API lists them; the service is stopped after."""
    with running(settings_for(served_url)) as (_, client):
        listed = client.get("/api/incidents", headers={"Authorization": f"Bearer {API_TOKEN}"})
    return {item["monitor_id"]: item for item in listed.json()["items"]}


def test_db_upgrade_brings_an_empty_database_to_head(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        current, head = schema_state(engine)
        assert current is None and not is_current(engine)
        result = invoke(["db", "upgrade"], db_url)
        assert result.exit_code == 0, result.output
        assert f"database schema at {head} (head {head})" in result.stdout
        assert is_current(engine)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"alert_event", "incident", "action_run", "audit_entry"} <= tables
        again = invoke(["db", "upgrade"], db_url)  # nothing left to do, and it says so
        assert again.exit_code == 0, again.output
        assert f"database schema at {head} (head {head})" in again.stdout
    finally:
        engine.dispose()


def test_playbooks_validate_lists_every_playbook(tmp_path: Path) -> None:
    result = invoke(["playbooks", "validate"], f"sqlite:///{tmp_path}/unused.db")
    assert result.exit_code == 0, result.output
    names = {
        name
        for path in (REPO / "playbooks").glob("*.yaml")
        for name in re.findall(r"^name: (\S+)", path.read_text(), flags=re.MULTILINE)
    }
    listed = re.findall(r"^ok  (\S+\.yaml):(\d+)  (\S+)$", result.stdout, flags=re.MULTILINE)
    assert {name for _, _, name in listed} == names
    assert len(listed) == len(names)
    assert f"{len(names)} playbooks valid" in result.stdout
    for source, line, name in listed:  # FILE:LINE points at the playbook's name
        assert Path(source).parent == REPO / "playbooks"
        assert Path(source).read_text().splitlines()[int(line) - 1] == f"name: {name}"


def test_playbooks_validate_names_file_and_line_of_an_unknown_key(tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "good.yaml").write_text("name: good\nactions:\n  - slack.post: {channel: '#a'}\n")
    bad = folder / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "match:\n"
        "  tags: {team: payments}\n"
        "  sevrity: P1\n"
        "actions:\n"
        "  - slack.post:\n"
        "      channel: '#b'\n"
        "      colour: red\n"
    )
    result = invoke(
        ["playbooks", "validate"],
        f"sqlite:///{tmp_path}/unused.db",
        RESPONDER_PLAYBOOKS=str(folder),
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert f"{bad}:4: unknown key 'sevrity'" in result.output
    assert f"{bad}:8: unknown key 'colour'" in result.output
    assert "playbooks valid" not in result.output and "ok  " not in result.output


@pytest.mark.parametrize("database", ["fresh-sqlite", "unreachable-postgres"])
def test_playbooks_test_shows_the_match_and_touches_no_database(
    tmp_path: Path, samples_dir: Path, database: str
) -> None:
    url = f"sqlite:///{tmp_path}/never.db" if database == "fresh-sqlite" else UNREACHABLE
    payload = samples_dir / f"{PAYMENT_SAMPLE}.json"
    result = invoke(["playbooks", "test", "--verbose", str(payload)], url)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        f"#1 {payload.name}  Triggered '[Triggered] High Payment Failure Rate' priority=P1 "
    )
    assert re.search(r"^   playbooks: payment-failure-rate \(new\)$", result.stdout, re.MULTILINE)
    for other in ("api-latency", "fraud-detection-down", "checkout-error-rate", "unrouted"):
        assert re.search(rf"^      no {other}: ", result.stdout, flags=re.MULTILINE), other
    lines = [line for line in result.stdout.splitlines() if line.startswith("   -> ")]
    actions = dict(line.removeprefix("   -> ").partition(" ")[::2] for line in lines)
    assert len(actions) == len(lines) == 4  # one step per action in this playbook
    assert json.loads(actions["pagerduty.trigger"])["severity"] == "critical"
    params = json.loads(actions["slack.post"])
    assert params["channel"] == "#payments-alerts"
    assert params["mention"] == "<!here>"
    assert params["text"].startswith("Failure rate: ( sum:payment.completions")
    assert list(tmp_path.iterdir()) == []  # no SQLite file was created


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("this is not JSON {", "unreadable body: not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"alert": {"id": "1"}}', "payload has no title"),
        (None, "No such file"),
    ],
    ids=["not-json", "array", "no-title", "missing"],
)
def test_playbooks_test_refuses_an_unusable_payload(
    tmp_path: Path, content: str | None, says: str
) -> None:
    payload = tmp_path / "alert.json"
    if content is not None:
        payload.write_text(content)
    result = invoke(["playbooks", "test", str(payload)], f"sqlite:///{tmp_path}/never.db")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"{payload}: " in result.stderr
    assert says in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "never.db").exists()


def test_incidents_list_shows_newest_first_and_filters(
    served_url: str, served: dict[str, Any]
) -> None:
    result = invoke(["incidents", "list"], served_url)
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATUS", "PRI", "OPENED"]
    assert len(lines) == 4
    ids = [int(line.split()[0]) for line in lines]
    assert ids == sorted((item["id"] for item in served.values()), reverse=True)
    by_id = {int(line.split()[0]): line for line in lines}
    payments = by_id[served["148275309"]["id"]]
    assert payments.split()[1:3] == ["resolved", "P1"]
    assert payments.endswith("[Recovered] High Payment Failure Rate")  # the current title
    assert "2026-11-22 22:00:00 UTC" in payments
    latency = by_id[served["148275400"]["id"]]
    assert latency.split()[1:3] == ["triggered", "P3"]

    resolved = invoke(["incidents", "list", "--status", "resolved"], served_url)
    assert resolved.exit_code == 0, resolved.output
    assert [int(line.split()[0]) for line in resolved.stdout.splitlines()[1:]] == [
        served["148275309"]["id"]
    ]
    two = invoke(["incidents", "list", "--limit", "2"], served_url)
    assert [int(line.split()[0]) for line in two.stdout.splitlines()[1:]] == ids[:2]


def test_incidents_show_prints_the_timeline_as_json(
    served_url: str, served: dict[str, Any]
) -> None:
    number = served["148275309"]["id"]
    result = invoke(["incidents", "show", "--json", str(number)], served_url)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert detail["id"] == number and detail["status"] == "resolved"
    assert detail["time_to_resolve_seconds"] == 1380.0
    assert [event["transition"] for event in detail["events"]] == ["Triggered", "Recovered"]
    actions = [run["action"] for run in detail["actions"]]
    assert [a for a in actions if a.startswith("slack.")] == ["slack.post", "slack.resolve"]
    assert [a for a in actions if a.startswith("pagerduty.")] == [
        "pagerduty.trigger",
        "pagerduty.resolve",  # recovery undoes the page by itself
    ]
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds.index("incident.opened") < kinds.index("incident.resolved")
    assert {entry["incident_id"] for entry in detail["timeline"]} == {number}


def test_incidents_show_of_an_unknown_id_fails_cleanly(
    served_url: str, served: dict[str, Any]
) -> None:
    result = invoke(["incidents", "show", "999"], served_url)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "no incident 999" in result.stderr
    assert result.stdout == ""


def _audit_rows(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_entry")).scalar_one())
    finally:
        engine.dispose()


def _tamper(db_url: str, statement: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text(statement)).rowcount == 1
    finally:
        engine.dispose()


def test_audit_verify_passes_after_activity(served_url: str, served: dict[str, Any]) -> None:
    total = _audit_rows(served_url)
    assert total > 10
    result = invoke(["audit", "verify"], served_url)
    assert result.exit_code == 0, result.output
    assert f"audit log intact: {total} entries verified" in result.stdout


@pytest.mark.parametrize(
    ("statement", "seq", "why"),
    [
        ("UPDATE audit_entry SET data = '{}' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_entry SET kind = 'run.succeeded' WHERE seq = 5", 5, "altered"),
        ("DELETE FROM audit_entry WHERE seq = 4", 4, "missing"),
    ],
    ids=["data", "kind", "deleted"],
)
def test_audit_verify_names_the_first_broken_seq(
    served_url: str, served: dict[str, Any], statement: str, seq: int, why: str
) -> None:
    _tamper(served_url, statement)
    result = invoke(["audit", "verify"], served_url)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert f"audit log BROKEN at seq {seq}:" in result.stderr
    assert why in result.stderr
    assert "intact" not in result.output


@pytest.mark.parametrize("token", [None, " , "], ids=["unset", "blank"])
def test_serve_refuses_without_a_webhook_token(
    tmp_path: Path, no_hang: None, token: str | None
) -> None:
    # Were the check missing, the missing folder would stop `serve` before it listened.
    url = f"sqlite:///{tmp_path}/missing/responder.db"
    result = invoke(["serve", "--port", "0"], url, RESPONDER_WEBHOOK_TOKEN=token)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "RESPONDER_WEBHOOK_TOKEN is not set" in result.stderr
    assert "--insecure" in result.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["worker"], {}),
        (["serve", "--port", "0"], {"RESPONDER_WEBHOOK_TOKEN": "a-token"}),
        (["serve", "--port", "0", "--no-worker"], {"RESPONDER_WEBHOOK_TOKEN": "a-token"}),
        (["incidents", "list"], {}),
    ],
    ids=["worker", "serve", "serve-no-worker", "incidents"],
)
def test_on_an_empty_postgres_database_commands_ask_for_db_upgrade(
    db_url: str, no_hang: None, args: list[str], env: dict[str, str]
) -> None:
    result = invoke(args, db_url, **env)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "responder db upgrade" in result.stderr
    assert "worker started" not in result.output
    engine = create_engine(db_url)
    try:
        assert schema_state(engine)[0] is None  # refused, and did not migrate on its own
    finally:
        engine.dispose()


def test_incidents_show_of_an_impossible_id_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(["incidents", "show", "99999999999999999999"], f"sqlite:///{tmp_path}/r.db")
    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert not isinstance(result.exception, OverflowError)


def test_a_sqlite_path_in_a_missing_folder_is_named_not_a_traceback(tmp_path: Path) -> None:
    result = invoke(["incidents", "list"], f"sqlite:///{tmp_path}/nowhere/r.db")
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert str(tmp_path / "nowhere") in result.output
