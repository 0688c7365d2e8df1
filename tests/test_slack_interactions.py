"""`POST /slack/interactions` and `POST /slack/commands`: requests signed as Slack signs them
(computed here with slack-sdk's own `SignatureVerifier`), on SQLite and PostgreSQL."""

from __future__ import annotations

import hmac
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from responder.main import Service
from responder.pipeline.answers import UnknownIncident
from tests.harness import running, settings_for
from tests.inbound import answers, open_incident, stored

SIGNING_SECRET = "slack-signing-secret-3"
App = tuple[Service, TestClient, int]


@dataclass
class Silences:
    """A small Silencer (the real one is another module's): remembers what it was asked."""

    known: set[int]
    made: list[tuple[int, str, timedelta, str]] = field(default_factory=list)

    def silence_incident(
        self, incident_id: int, *, author: str, duration: timedelta, reason: str
    ) -> int:
        if incident_id not in self.known:
            raise UnknownIncident(f"no incident {incident_id}")
        self.made.append((incident_id, author, duration, reason))
        return len(self.made)


@pytest.fixture
def silences() -> Silences:
    return Silences(set())


@pytest.fixture
def app(migrated_url: str, samples_dir: Path, silences: Silences) -> Iterator[App]:
    settings = settings_for(migrated_url, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    with running(settings) as (service, _started):
        # The lead wires the real silencer into the service; its app is built with it. The
        # service is running (started's lifespan), so this second client needs none.
        service.silencer = silences
        client = TestClient(service.app)
        incident_id = open_incident(service, client, samples_dir)
        silences.known.add(incident_id)
        yield service, client, incident_id


def signed(body: bytes, *, secret: str = SIGNING_SECRET, age: float = 0) -> dict[str, str]:
    timestamp = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(text: str, trigger: str = "13345224609.738474920.8088930838d88f008e0") -> bytes:
    form = {
        "token": "deprecated-verification-token",
        "team_id": "T0001",
        "channel_id": "C0PAYMENTS",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/responder",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/1234/5678",
        "trigger_id": trigger,
    }
    return urllib.parse.urlencode(form).encode()


def button_body(action_id: str, value: str, trigger: str = "trigger.button.1") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0001"},
        "trigger_id": trigger,
        "team": {"id": "T0001", "domain": "acme"},
        "channel": {"id": "C0PAYMENTS", "name": "payments-alerts"},
        "message": {"ts": "1733475245.000100", "type": "message"},
        "response_url": "https://hooks.slack.com/actions/T0001/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "responder.incident",
                "value": value,
                "action_ts": "1733475300.123456",
                "text": {"type": "plain_text", "text": "Acknowledge"},
            }
        ],
    }
    return urllib.parse.urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def command(client: TestClient, text: str, **kwargs: Any) -> str:
    body = command_body(text, **kwargs)
    response = client.post("/slack/commands", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    text_: str = answer["text"]
    return text_


def press(client: TestClient, action_id: str, value: str, **kwargs: Any) -> Any:
    body = button_body(action_id, value, **kwargs)
    return client.post("/slack/interactions", content=body, headers=signed(body))


# --- answers ----------------------------------------------------------------------------------


def test_ack_command_stores_one_answer_for_the_incident(app: App) -> None:
    service, client, incident_id = app
    before = stored(service)
    reply = command(client, f"ack {incident_id}")
    assert f"Acknowledgement of incident {incident_id} recorded" in reply
    (row,) = answers(service)
    assert row["fingerprint"] == "answer:slack:a:13345224609.738474920.8088930838d88f008e0"
    assert (row["answer"], row["incident_id"], row["actor"], row["via"]) == (
        "acknowledge",
        incident_id,
        "alice",
        "slack",
    )
    assert row["note"] == "Slack user U0ALICE"
    assert stored(service).events == before.events + 1
    # The same request again (a retry): recorded once.
    assert "recorded already" in command(client, f"ack {incident_id}")
    assert len(answers(service)) == 1


def test_resolve_command_and_button_store_resolves(app: App) -> None:
    service, client, incident_id = app
    assert "Resolution of incident" in command(client, f"resolve #{incident_id}", trigger="t.r1")
    response = press(client, "responder.resolve", str(incident_id), trigger="t.r2")
    assert response.status_code == 200, response.text
    assert response.json()["response_type"] == "ephemeral"
    rows = answers(service)
    assert [(r["answer"], r["incident_id"], r["actor"]) for r in rows] == [
        ("resolve", incident_id, "alice"),
        ("resolve", incident_id, "bob"),
    ]


def test_acknowledge_button_stores_an_answer_by_the_slack_user(app: App) -> None:
    service, client, incident_id = app
    response = press(client, "responder.ack", str(incident_id))
    assert response.status_code == 200
    assert "recorded" in response.json()["text"]
    (row,) = answers(service)
    assert (row["answer"], row["actor"], row["note"]) == ("acknowledge", "bob", "Slack user U0BOB")
    assert row["fingerprint"] == "answer:slack:a:trigger.button.1"


def test_silence_button_and_command(app: App, silences: Silences) -> None:
    service, client, incident_id = app
    response = press(client, "responder.silence", str(incident_id))
    assert "silenced for 1h (silence 1)" in response.json()["text"]
    assert "silenced for 30m (silence 2)" in command(client, f"silence {incident_id} 30m")
    assert [(made[0], made[1], made[2]) for made in silences.made] == [
        (incident_id, "bob (slack)", timedelta(hours=1)),
        (incident_id, "alice (slack)", timedelta(minutes=30)),
    ]
    assert "bad duration" in command(client, f"silence {incident_id} soon")
    # Anyone in a channel can type it: a long silence is for the API or the CLI.
    assert "at most 7d" in command(client, f"silence {incident_id} 3650d")
    assert "No incident 99999" in command(client, "silence 99999")
    assert len(silences.made) == 2
    assert answers(service) == []  # a silence is not an answer to the incident


def test_silence_through_the_real_silence_desk(app: App) -> None:
    service, _client, incident_id = app
    service.silencer = None  # the service's own SilenceDesk, as in production
    fresh = TestClient(service.app)  # built now, with it (the fixture's service runs)
    reply = command(fresh, f"silence {incident_id} 2h")
    assert reply.startswith(f"Incident {incident_id}'s monitor and scope are silenced for 2h")
    with service.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT author FROM silence")).all()
    assert [row[0] for row in rows] == ["alice (slack)"]


def test_an_unknown_incident_stores_nothing(app: App) -> None:
    service, client, _ = app
    before = stored(service)
    assert command(client, "ack 99999") == "No incident 99999."
    assert press(client, "responder.resolve", "99999").json()["text"] == "No incident 99999."
    assert stored(service) == before


# --- questions --------------------------------------------------------------------------------


def test_incident_command_summarises_it(app: App) -> None:
    service, client, incident_id = app
    reply = command(client, f"incident {incident_id}")
    assert f"*Incident {incident_id}: [Triggered] High Payment Failure Rate*" in reply
    assert "Status: triggered" in reply
    assert "Acknowledged" not in reply
    with service.engine.begin() as conn:  # as the pipeline records a person's acknowledgement
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'acknowledged', acknowledged_by = :who, "
                "acknowledged_at = opened_at WHERE id = :id"
            ),
            {"who": "alice (slack)", "id": incident_id},
        )
    reply = command(client, f"incident {incident_id}")
    assert "Status: acknowledged" in reply
    assert "Acknowledged by alice (slack) at " in reply
    assert command(client, "incident 99999") == "No incident 99999."


def test_history_lists_a_services_incidents(app: App, samples_dir: Path) -> None:
    service, client, incident_id = app
    other = open_incident(service, client, samples_dir, "api-latency.triggered")
    reply = command(client, "history payment")
    assert reply.startswith("*Last 1 incidents of payment:*")
    assert f"\n{incident_id} · triggered · " in reply
    assert f"\n{other} · " not in reply
    assert command(client, "history nothing-here") == "No incidents of service nothing-here."
    assert "Usage" in command(client, "history")


def test_untrusted_text_is_escaped(app: App) -> None:
    _, client, _incident_id = app
    assert "&lt;!channel&gt;" in command(client, "history <!channel>")
    assert "`&lt;!here&gt;`" in command(client, "<!here>")


@pytest.mark.parametrize("text", ["", "help", "HELP"])
def test_help(app: App, text: str) -> None:
    _, client, _ = app
    reply = command(client, text)
    for word in ("ack ID", "resolve ID", "silence ID", "incident ID", "history SERVICE"):
        assert word in reply


@pytest.mark.parametrize("text", ["ack", "ack forty-two", "resolve 99999999999", "incident ٤٢"])
def test_a_bad_incident_number_is_explained(app: App, text: str) -> None:
    service, client, _ = app
    before = stored(service)
    assert "Give the incident's number" in command(client, text)
    assert stored(service) == before


# --- verification -----------------------------------------------------------------------------


def _bad_headers(body: bytes) -> dict[str, dict[str, str]]:
    good = signed(body)
    return {
        "missing": {"Content-Type": good["Content-Type"]},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "wrong secret": signed(body, secret="not-the-secret"),
        "stale": signed(body, age=301),
        "from the future": signed(body, age=-301),
        "not a number": {**good, "X-Slack-Request-Timestamp": "soon"},
        "huge number": {**good, "X-Slack-Request-Timestamp": "9" * 5000},
        "another body's": signed(body + b"&extra=1"),
        "no prefix": {**good, "X-Slack-Signature": good["X-Slack-Signature"][3:]},
    }


@pytest.mark.parametrize("case", list(_bad_headers(b"")))
@pytest.mark.parametrize("path", ["/slack/commands", "/slack/interactions"])
def test_a_bad_stale_or_missing_signature_is_401_and_stores_nothing(
    app: App, silences: Silences, path: str, case: str
) -> None:
    service, client, incident_id = app
    before = stored(service)
    if path == "/slack/commands":
        body = command_body(f"ack {incident_id}")
    else:
        body = button_body("responder.silence", str(incident_id))
    response = client.post(path, content=body, headers=_bad_headers(body)[case])
    assert response.status_code == 401, response.text
    assert "error" in response.json()
    assert SIGNING_SECRET not in response.text
    assert stored(service) == before
    assert silences.made == []


def test_a_signature_within_five_minutes_is_accepted(app: App) -> None:
    service, client, incident_id = app
    body = command_body(f"ack {incident_id}")
    response = client.post("/slack/commands", content=body, headers=signed(body, age=290))
    assert response.status_code == 200
    assert len(answers(service)) == 1


def test_without_a_signing_secret_slack_is_refused(migrated_url: str, samples_dir: Path) -> None:
    with running(settings_for(migrated_url)) as (service, client):
        incident_id = open_incident(service, client, samples_dir)
        before = stored(service)
        body = command_body(f"ack {incident_id}")
        response = client.post("/slack/commands", content=body, headers=signed(body))
        assert response.status_code == 401
        assert "SLACK_SIGNING_SECRET" in response.json()["error"]
        assert stored(service) == before


@pytest.mark.parametrize(
    "body",
    [b"payload=not-json", b"nothing=here", b"payload=%FF"],
    ids=["not json", "no payload", "payload not utf-8"],
)
def test_a_signed_but_unreadable_interaction_is_400(app: App, body: bytes) -> None:
    service, client, _ = app
    before = stored(service)
    response = client.post("/slack/interactions", content=body, headers=signed(body))
    assert response.status_code == 400, response.text
    assert stored(service) == before


def test_a_body_that_is_not_utf8_cannot_be_verified(app: App) -> None:
    # Slack sends UTF-8 only, and its verifier reads the body as text: this is a forgery.
    service, client, _ = app
    before = stored(service)
    body = b"payload=\xff\xfe"
    timestamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{timestamp}:".encode() + body, "sha256")
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }
    response = client.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 401
    assert stored(service) == before


def test_an_interaction_that_is_not_ours_changes_nothing(app: App) -> None:
    service, client, incident_id = app
    before = stored(service)
    other = button_body("someone.elses.button", str(incident_id))
    response = client.post("/slack/interactions", content=other, headers=signed(other))
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    shortcut = urllib.parse.urlencode(
        {"payload": orjson.dumps({"type": "shortcut", "trigger_id": "x"}).decode()}
    ).encode()
    response = client.post("/slack/interactions", content=shortcut, headers=signed(shortcut))
    assert response.status_code == 200
    assert stored(service) == before
