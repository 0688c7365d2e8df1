"""No secret reaches anything the service writes or shows, in any common encoding.

One full run per database with a distinctive value for every secret setting, against the
three vendor fakes: alerts triggered, repeated and recovered; every vendor answering first
with an error that echoes the credentials it was sent (raw, URL-encoded and in base64, as
a careless vendor or proxy might), some retried, some failed for good. Then every place
the service writes or shows something is searched: each log line (structlog and the
standard logging, at debug), each row of each table (the audit log among them), each answer
of every route, the output of every CLI command, and what it posted to the vendors for
people to read (Slack messages, Datadog incident and notebook text, PagerDuty events).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

import integrations.pagerduty.actions as pagerduty_actions_module
from responder.cli import app as cli
from responder.logs import configure
from responder.main import Service
from responder.settings import Settings
from tests.fakes.datadog import FakeDatadog
from tests.fakes.pagerduty import USER_EMAIL, FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.harness import running, sample
from tests.logstate import logging_kept
from tests.vendors import CHANNELS, WORKFLOW_ID, settle

WEBHOOK_TOKENS = ("whk-OLD-Zq8rT2vN5mXa", "whk-NEW-Lp3sD9fK7yRb")
SECRETS = {
    "RESPONDER_WEBHOOK_TOKEN": ",".join(WEBHOOK_TOKENS),
    "RESPONDER_API_TOKEN": "api-Tk4Hx9QmWc2Jv7Ns",
    "SLACK_BOT_TOKEN": "xoxb-Sq7Yd2Lk9Pw4Rz6M",
    "SLACK_SIGNING_SECRET": "sgn-Bv5Nc8Jh3Gf6Dt1Q",
    "PAGERDUTY_ROUTING_KEY": "RKpd7Hq2Wz9Lm4Xc8Vb3Nf6Ty1Gs5Ju0",  # 32, as PagerDuty's are
    "PAGERDUTY_API_TOKEN": "u+Pk3Wd8Zr6Yt1Hm/Qe",
    "DD_API_KEY": "ddapi-Ce4Xv7Bn2Mq9Lk5J",
    "DD_APP_KEY": "ddapp-Fr8Gt3Hy6Ju1Ki4O",
}
# A playbook's own `env:` secret, read when the step runs.
PAYMENTS_KEY_ENV = "SECRETTEST_PAYMENTS_KEY"
PAYMENTS_KEY = "PKpy3Nm8Qw2Er7Ty5Ui9Op4As6Df1Gh0"
VALUES = (*WEBHOOK_TOKENS, *list(SECRETS.values())[1:], PAYMENTS_KEY)
API_TOKEN = SECRETS["RESPONDER_API_TOKEN"]

PLAYBOOK = f"""
name: everything-payments
description: every action that holds a credential, on the payments alerts
match:
  tags: {{service: payment}}
actions:
  - pagerduty.trigger:
      routing_key: env:{PAYMENTS_KEY_ENV}
      severity: critical
  - pagerduty.note:
      content: "Responder saw: {{{{ alert.status }}}}"
  - datadog.incident:
      severity: SEV-2
  - datadog.notebook: {{}}
  - datadog.workflow:
      workflow_id: {WORKFLOW_ID}
      inputs: {{service: "{{{{ alert.tags.service }}}}"}}
  - slack.post:
      channel: "#payments-alerts"
      text: "Failure rate: {{{{ alert.status }}}}"
"""


def forms(secret: str) -> dict[str, str]:
    """What of `secret` must appear nowhere: itself, escaped, encoded, and its first 8
    characters (a clipped secret is still a leak)."""
    found = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "url": quote(secret, safe=""),
        "form": quote_plus(secret),
        "prefix": secret[:8],
    }
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        core = encoded[-(-offset * 8 // 6) : (offset + len(raw)) * 8 // 6]
        found[f"base64+{offset}"] = core
        found[f"base64url+{offset}"] = core.replace("+", "-").replace("/", "_")
    return found


def leaks(texts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(where, which secret's first characters, which form) for every secret found."""
    found = []
    for where, text in texts.items():
        for secret in VALUES:
            for form, value in forms(secret).items():
                if value in text:
                    found.append((where, secret[:4], form))
    return found


def echo(*secrets: str) -> str:
    """A vendor's error message that repeats the credentials of the request."""
    parts = []
    for secret in secrets:
        basic = base64.b64encode(f"user:{secret}".encode()).decode()
        parts.append(f"{secret} (Basic {basic}, key={quote(secret, safe='')})")
    return "credentials rejected: " + "; ".join(parts)


def test_the_scan_finds_every_form_it_looks_for() -> None:
    """The search itself can fail: each form of each secret, planted, is found."""
    for secret in VALUES:
        for form, value in forms(secret).items():
            assert leaks({"planted": f"...{value}..."}), (secret, form)
        basic = base64.b64encode(f"api:{secret}".encode()).decode()
        assert leaks({"planted": basic})
    assert leaks({"clean": "Payment failure rate above 5% on payments (P1)"}) == []


@pytest.fixture
def fakes(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[FakeSlack, FakePagerDuty, FakeDatadog]]:
    monkeypatch.setenv(PAYMENTS_KEY_ENV, PAYMENTS_KEY)
    monkeypatch.setattr(pagerduty_actions_module, "EVENTS_INTERVAL", 0.0)
    with (
        FakeSlack(token=SECRETS["SLACK_BOT_TOKEN"], channels=CHANNELS) as slack,
        FakePagerDuty(
            routing_keys=(SECRETS["PAGERDUTY_ROUTING_KEY"], PAYMENTS_KEY),
            api_token=SECRETS["PAGERDUTY_API_TOKEN"],
        ) as pagerduty,
        FakeDatadog(
            api_key=SECRETS["DD_API_KEY"], app_key=SECRETS["DD_APP_KEY"], workflows={WORKFLOW_ID}
        ) as datadog,
    ):
        datadog.finish_instances(after_polls=1)
        yield slack, pagerduty, datadog


def environment(
    db_url: str, playbooks: Path, fakes: tuple[FakeSlack, FakePagerDuty, FakeDatadog]
) -> dict[str, str]:
    slack, pagerduty, datadog = fakes
    return {
        **SECRETS,
        "DATABASE_URL": db_url,
        "RESPONDER_PLAYBOOKS": str(playbooks),
        "RESPONDER_LOG_LEVEL": "debug",
        "RESPONDER_POLL_SECONDS": "0.05",
        "RESPONDER_SLACK_API_URL": slack.base_url,
        "RESPONDER_SLACK_CHANNEL_INTERVAL": "0",
        "RESPONDER_PAGERDUTY_EVENTS_URL": pagerduty.events_url,
        "RESPONDER_PAGERDUTY_API_URL": pagerduty.api_url,
        "PAGERDUTY_FROM_EMAIL": USER_EMAIL,
        "RESPONDER_DATADOG_API_URL": datadog.base_url,
    }


def inject_echoing_faults(fakes: tuple[FakeSlack, FakePagerDuty, FakeDatadog]) -> None:
    """Each vendor's first calls fail with an error that repeats the request's credentials:
    the transient ones are retried, the 401 and 403 fail their run for good."""
    slack, pagerduty, datadog = fakes
    slack_token = SECRETS["SLACK_BOT_TOKEN"]
    pd_keys = (PAYMENTS_KEY, SECRETS["PAGERDUTY_ROUTING_KEY"])
    dd_keys = (SECRETS["DD_API_KEY"], SECRETS["DD_APP_KEY"])
    slack.refuse_next("chat.postMessage", 500, message=echo(slack_token))
    slack.refuse_next("chat.update", 500, message=echo(slack_token))
    pagerduty.refuse_next("events", 500, message=echo(*pd_keys))
    pagerduty.refuse_next("incidents", 401, message=echo(SECRETS["PAGERDUTY_API_TOKEN"]))
    datadog.refuse_next("CreateIncident", 403, message=echo(*dd_keys))
    datadog.refuse_next("CreateNotebook", 500, message=echo(*dd_keys))
    datadog.refuse_next("CreateWorkflowInstance", 503, message=echo(*dd_keys))


def answers_of_every_route(client: TestClient, samples_dir: Path) -> dict[str, str]:
    """Every route's answers, with and without the right token, good and bad requests."""
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    got: dict[str, str] = {}

    def keep(name: str, response: Any) -> None:
        got[name] = f"{response.status_code} {dict(response.headers)} {response.text}"

    for path in ("/healthz", "/readyz", "/metrics", "/api/stats", "/api/incidents"):
        keep(path, client.get(path, headers=auth))
        keep(f"{path} no token", client.get(path))
        keep(f"{path} wrong token", client.get(path, headers={"Authorization": "Bearer nope"}))
    for incident in json.loads(client.get("/api/incidents", headers=auth).text)["items"]:
        path = f"/api/incidents/{incident['id']}"
        keep(path, client.get(path, headers=auth))
    after, page = 0, 0
    while after is not None:
        response = client.get(f"/api/audit?after={after}&limit=1000", headers=auth)
        keep(f"/api/audit page {page}", response)
        after, page = response.json()["next_after"], page + 1
    keep("/api/incidents/999999", client.get("/api/incidents/999999", headers=auth))
    keep("bad query", client.get("/api/incidents?since=yesterday", headers=auth))
    body = sample(samples_dir, "api-latency.warn")
    keep("webhook wrong token", client.post("/webhooks/datadog", json=body))
    keep(
        "webhook too large",
        client.post(
            "/webhooks/datadog",
            content=b"x" * 300_000,
            headers={"X-Responder-Token": WEBHOOK_TOKENS[1]},
        ),
    )
    keep(
        "webhook not json",
        client.post(
            "/webhooks/datadog", content=b"{", headers={"X-Responder-Token": WEBHOOK_TOKENS[1]}
        ),
    )
    return got


def every_row(engine: sa.Engine) -> str:
    """Every column of every row of every table, as text."""
    tables = sa.MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        rows = {
            name: [list(row) for row in conn.execute(sa.select(table)).all()]
            for name, table in tables.tables.items()
        }
    return json.dumps(rows, default=str)


def cli_outputs(env: dict[str, str], samples_dir: Path, incident_ids: list[int]) -> dict[str, str]:
    runs = [
        ["--help"],
        ["incidents", "list"],
        ["incidents", "list", "--status", "resolved"],
        *(["incidents", "show", str(i)] for i in incident_ids),
        ["incidents", "show", "999999"],
        ["audit", "verify"],
        ["playbooks", "validate"],
        [
            "playbooks",
            "test",
            "--verbose",
            str(samples_dir / "payment-failure-rate.triggered.json"),
        ],
        ["playbooks", "test", "--json", str(samples_dir / "payment-failure-rate.recovered.json")],
        ["db", "upgrade"],
    ]
    outputs: dict[str, str] = {}
    for args in runs:
        with logging_kept():
            result = CliRunner().invoke(cli, args, env=env)
        name = " ".join(args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            name,
            result.exception,
        )
        outputs[f"cli {name}"] = result.output + result.stderr
    assert "audit log intact" in outputs["cli audit verify"]
    return outputs


def posted_for_people(fakes: tuple[FakeSlack, FakePagerDuty, FakeDatadog]) -> dict[str, str]:
    """What the service wrote into the vendors for people to read (not the credentials it
    presented to them, which the fakes must see)."""
    slack, pagerduty, datadog = fakes
    messages = [
        [m.text, m.blocks, m.metadata, m.edits]
        for channel in CHANNELS.values()
        for m in slack.messages(channel)
    ]
    incidents = [[i.attributes, i.initial_cells, i.patches] for i in datadog.incidents()]
    notebooks = [[n.name, n.cells] for n in datadog.notebooks()]
    instances = [i.payload for i in datadog.instances()]
    events = [{k: v for k, v in e.body.items() if k != "routing_key"} for e in pagerduty.events()]
    notes = [i.notes for i in pagerduty.incidents()]
    return {
        "slack messages": json.dumps(messages, default=str),
        "datadog": json.dumps([incidents, notebooks, instances], default=str),
        "pagerduty": json.dumps([events, notes], default=str),
    }


def test_no_secret_reaches_logs_records_answers_cli_or_pages(
    migrated_url: str,
    tmp_path: Path,
    samples_dir: Path,
    fakes: tuple[FakeSlack, FakePagerDuty, FakeDatadog],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "everything.yaml").write_text(PLAYBOOK)
    env = environment(migrated_url, playbooks, fakes)
    inject_echoing_faults(fakes)
    caplog.set_level(logging.DEBUG)  # every library's debug lines too
    settings = Settings(**env)  # type: ignore[arg-type]
    texts: dict[str, str] = {}
    with logging_kept(), running(settings) as (service, client):
        configure("debug", service.redactor)  # production's logging, onto captured stderr
        texts.update(deliver_the_story(service, client, samples_dir))
        texts.update(answers_of_every_route(client, samples_dir))
        ids = [
            i["id"]
            for i in client.get(
                "/api/incidents", headers={"Authorization": f"Bearer {API_TOKEN}"}
            ).json()["items"]
        ]
        texts["database"] = every_row(service.engine)
    texts.update(cli_outputs(env, samples_dir, ids))
    captured = capsys.readouterr()
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts["logging"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in caplog.records
    )
    texts.update(posted_for_people(fakes))

    # The echoes really happened and were masked, and the logs are the real ones.
    assert all(fake.pending_faults() == 0 for fake in fakes), "an injected fault was not met"
    assert "[REDACTED]" in texts["database"]
    assert '"event": "run.failed"' in texts["stderr"], "the runs' outcomes were not logged"
    assert "slack_sdk.web.base_client" in {r.name for r in caplog.records}, "no debug lines"
    assert leaks(texts) == []


def deliver_the_story(service: Service, client: TestClient, samples_dir: Path) -> dict[str, str]:
    """Triggered (through each way of passing the token), repeated, recovered; settled."""
    old, new = WEBHOOK_TOKENS
    basic = base64.b64encode(f"datadog:{new}".encode()).decode()
    answers: dict[str, str] = {}
    story = [
        ("payment-failure-rate.triggered", {"X-Responder-Token": old}),
        ("payment-failure-rate.re-triggered", {"Authorization": f"Bearer {new}"}),
        ("payment-failure-rate.recovered", {"Authorization": f"Basic {basic}"}),
    ]
    for name, headers in story:
        response = client.post("/webhooks/datadog", json=sample(samples_dir, name), headers=headers)
        assert response.status_code == 202, response.text
        answers[f"webhook {name}"] = f"{dict(response.headers)} {response.text}"
        settle(service)
    with service.engine.connect() as conn:
        failed = sa.text("SELECT action, state FROM action_run WHERE state != 'succeeded'")
        states = {str(action): str(state) for action, state in conn.execute(failed)}
    # The 401 and the 403 failed their runs for good; everything transient was retried.
    assert states == {"pagerduty.note": "failed", "datadog.incident": "failed"}, states
    return answers
