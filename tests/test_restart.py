"""A real `responder serve` killed with SIGKILL mid-work finishes every run after restart, once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from responder.store import audit
from responder.store.db import create_engine
from responder.store.migrate import upgrade
from tests.fakes.slack import FakeSlack
from tests.harness import REPO, SLACK_TOKEN, TOKEN

ALERTS = 24
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(db_url: str, slack: FakeSlack, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
        "RESPONDER_WEBHOOK_TOKEN": TOKEN,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "RESPONDER_SLACK_API_URL": slack.base_url,
        "RESPONDER_LEASE_SECONDS": "3",  # a dead worker's runs come back quickly
        "RESPONDER_POLL_SECONDS": "0.1",
        # Every alert's own root is what these tests count: storm mode (a summary instead
        # of the roots above its rate) is off.
        "RESPONDER_STORM_RATE": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "responder.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("service did not start:\n" + log.read_text()[-3000:])


def alert(i: int, samples_dir: Path) -> bytes:
    data = json.loads((samples_dir / "checkout-error-rate.triggered.json").read_text())
    data["id"] = f"restart-{i}"
    data["alert"]["cycle_key"] = f"cycle-{i}"
    data["alert"]["scope"] = f"host:ip-10-0-0-{i}"
    data["alert"]["title"] = f"[Triggered on {{host:ip-10-0-0-{i}}}] Error rate spike <{i}>"
    # An env of its own: checkout groups by service and env, and each alert here must be
    # an incident of its own.
    data["tags"] = data["tags"].replace("env:prod", f"env:restart-{i}")
    return json.dumps(data).encode()


def deliver(port: int, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/datadog",
        data=body,
        headers={"Content-Type": "application/json", "X-Responder-Token": TOKEN},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN, channels={"#incidents": "C0INCIDENTS"}) as fake:
        yield fake


def test_sigkill_with_runs_pending_finishes_all_once(
    db_url: str, slack: FakeSlack, samples_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    port = free_port()
    upgrade(db_url)  # what the Procfile's release step does; PostgreSQL never self-migrates
    # Slack posts, then takes 2 s to answer: the kill lands between "posted" and "recorded".
    slack.delay_next("chat.postMessage", 2.0, count=ALERTS)
    proc = start(db_url, slack, port, log)
    try:
        for i in range(ALERTS):
            assert deliver(port, alert(i, samples_dir)) == 202
        deadline = time.monotonic() + 20
        while len(slack.root_messages("C0INCIDENTS")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    posted_before = len(slack.root_messages("C0INCIDENTS"))
    assert 0 < posted_before < ALERTS, "the kill must land while runs are still pending"

    proc = start(db_url, slack, port, log)
    engine = create_engine(db_url)
    try:
        deadline = time.monotonic() + 60
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                states = dict(
                    conn.execute(
                        sa.text(
                            "SELECT state, count(*) FROM action_run "
                            "WHERE action = 'slack.post' GROUP BY state"
                        )
                    ).all()
                )
            if states.get("succeeded") == ALERTS:
                break
            time.sleep(0.2)
        assert states == {"succeeded": ALERTS}, log.read_text()[-3000:]
        roots = slack.root_messages("C0INCIDENTS")
        texts = [m.text or "" for m in roots]
        for i in range(ALERTS):
            # the title is escaped for Slack: "<3>" arrives as "&lt;3&gt;"
            posts = [t for t in texts if f"spike &lt;{i}&gt;" in t]
            assert len(posts) == 1, f"alert {i} posted {len(posts)} times"
        assert len(roots) == ALERTS, "no alert posted twice"
        with engine.connect() as conn:
            adopted = conn.execute(
                sa.text("SELECT count(*) FROM audit_entry WHERE kind = 'run.lease_expired'")
            ).scalar_one()
            assert adopted >= 1, "some runs were mid-call at the kill and had to be re-checked"
            assert audit.verify(conn).ok
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        engine.dispose()
