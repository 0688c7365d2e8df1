"""The web pages in a real headless Chromium (Debian's, driven by Playwright), on SQLite and
PostgreSQL: a person logs in, finds last week's P1 incidents of a service, opens one and
reads every step with its time, outcome and reason and the links to the vendors, presses
Acknowledge and sees it applied by the worker, and reads MTTA and MTTR per team.

One browser for the session, one live service (uvicorn, in-process worker, the vendor fakes)
per database. Screenshots are kept in tests/artifacts/browser/<database>/ (not in git).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import uvicorn

from responder.main import Service, build_service
from responder.store.migrate import upgrade
from responder.store.tables import ActionRun
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, REPO, TOKEN, sample
from tests.processes import free_port
from tests.vendors import PAYMENTS_KEY, Vendors, vendors

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("RESPONDER_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]


# Module scope, not session: while Playwright's sync driver is open it holds an event loop
# in the main thread, and every later test's asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: `make install-dev` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Live:
    service: Service
    url: str
    shots: Path


@contextmanager
def serving(service: Service) -> Iterator[str]:
    """The service's app on a real port, its lifespan (writer, worker thread) running."""
    port = free_port()
    config = uvicorn.Config(
        service.app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start in 30 s"
        assert thread.is_alive(), "the service stopped while starting"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def dated(samples_dir: Path, name: str, when: datetime) -> dict[str, Any]:
    """A sample delivery moved to `when` (Datadog's date, in ms)."""
    body = sample(samples_dir, name)
    millis = str(int(when.timestamp() * 1000))
    body["date"] = body["last_updated"] = millis
    return body


def deliver(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/webhooks/datadog",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "X-Responder-Token": TOKEN},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 202)


def wait_until_quiet(service: Service, events: int, timeout: float = 60.0) -> None:
    """Until the worker has handled `events` deliveries and no action is left to run (but
    checkout's Datadog workflow, which the fake runs for a while and the test never reads)."""
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT (SELECT count(*) FROM alert_event WHERE processed_at IS NOT NULL),"
        " (SELECT count(*) FROM action_run WHERE state IN ('pending', 'running')"
        "  AND not_before <= :soon AND action <> 'datadog.workflow')"
    )
    soon = datetime.now(UTC) + timedelta(minutes=1)
    while time.monotonic() < deadline:
        with service.engine.connect() as conn:
            done, busy = conn.execute(query, {"soon": soon}).one()
        if done >= events and busy == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker did not settle in {timeout} s")


@pytest.fixture(params=BACKENDS)
def live(
    request: pytest.FixtureRequest, samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Live]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    url = restore(request, request.param)
    fakes: Vendors
    with vendors() as fakes:
        settings = fakes.settings(
            url,
            RESPONDER_SLACK_CHANNEL_INTERVAL="0",
            RESPONDER_STORM_RATE="0",
        )
        service = build_service(settings)
        upgrade(service.engine)
        shots = ARTIFACTS / request.param
        shots.mkdir(parents=True, exist_ok=True)
        try:
            with serving(service) as base:
                now = datetime.now(UTC)
                history = [
                    ("payment-failure-rate.triggered", now - timedelta(days=2)),
                    ("fraud-detection-down.triggered", now - timedelta(days=2, hours=1)),
                    ("api-latency.triggered", now - timedelta(days=1)),
                    ("checkout-error-rate.triggered", now - timedelta(days=12)),
                ]
                for name, when in history:
                    deliver(base, dated(samples_dir, name, when))
                wait_until_quiet(service, len(history))
                yield Live(service, base, shots)
        finally:
            service.engine.dispose()
    print(f"\nbrowser screenshots: {shots}", file=sys.stderr)


def test_a_person_finds_reads_acknowledges_and_measures(browser: Any, live: Live) -> None:
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    shot = Shots(page, live.shots)

    # Log in with the API token.
    page.goto(f"{live.url}/")
    assert page.url.startswith(f"{live.url}/login")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", API_TOKEN)
    shot("login")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")
    assert page.locator("table.incidents tbody tr").count() == 4

    # Last week's P1 incidents of the payment service.
    page.select_option("select[name=priority]", "P1")
    page.select_option("select[name=service]", "payment")
    page.select_option("select[name=within]", "7d")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*priority=P1.*"))
    rows = page.locator("table.incidents tbody tr")
    assert rows.count() == 1
    assert "High Payment Failure Rate" in rows.first.inner_text()
    shot("list-last-week-P1-payment")
    page.set_viewport_size(PHONE)
    shot("list-on-a-phone")
    page.set_viewport_size(LAPTOP)

    # Open it: every step with its time, outcome and reason, and the vendors' links.
    rows.first.locator("a").click()
    page.wait_for_url(re.compile(r".*/incidents/\d+$"))
    timeline = page.locator("ol.timeline").inner_text()
    assert "Playbooks matched: payment-failure-rate" in timeline
    assert re.search(r"fraud-detection-down did not match: \S+", timeline)
    assert "Planned pagerduty.trigger (playbook payment-failure-rate, step 0)" in timeline
    assert "pagerduty.trigger succeeded (attempt 1)" in timeline
    assert "slack.post succeeded (attempt 1)" in timeline
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", timeline)
    runs = page.locator("table.runs").inner_text()
    for action in ("pagerduty.trigger", "datadog.incident", "datadog.notebook", "slack.post"):
        assert action in runs
    links = page.locator("p.links").inner_text()
    for name in ("PagerDuty incident", "Datadog incident", "Notebook", "Slack thread"):
        assert name in links, links
    shot("incident")

    # Acknowledge: the answer goes through the pipeline; the page shows it once applied.
    page.click("button:has-text('Acknowledge')")
    page.wait_for_url(re.compile(r".*notice=acknowledge$"))
    deadline = time.monotonic() + 30
    while "by alice (web)" not in page.locator("dd.acknowledged").inner_text():
        assert time.monotonic() < deadline, "the acknowledgement was not applied in 30 s"
        time.sleep(0.2)
        page.reload()
    assert page.locator("h1 .badge").inner_text() == "acknowledged"
    assert "Incident acknowledged" in page.locator("ol.timeline").inner_text()
    shot("incident-acknowledged")

    # The postmortem draft, downloaded from the page: who answered, and how fast.
    with page.expect_download() as downloading:
        page.click("a:has-text('Postmortem draft')")
    draft = Path(downloading.value.path()).read_text(encoding="utf-8")
    assert downloading.value.suggested_filename.endswith("-postmortem.md")
    assert draft.startswith("# ") and "High Payment Failure Rate" in draft
    assert "alice (web)" in draft and "Time to acknowledge" in draft

    # MTTA and MTTR per team.
    page.click("nav a:has-text('Stats')")
    page.wait_for_url(f"{live.url}/stats")
    teams = page.locator("#teams tbody tr")
    by_team = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(2).inner_text()
        for row in teams.all()
    }
    assert set(by_team) >= {"payments", "security", "platform", "shop"}
    assert by_team["payments"] != "-"  # acknowledged: it has a time to acknowledge
    assert by_team["security"] == "-"
    assert page.locator("svg rect").count() > 0
    shot("stats")
    page.set_viewport_size(PHONE)
    shot("stats-on-a-phone")
    context.close()


class Shots:
    def __init__(self, page: Any, folder: Path) -> None:
        self._page = page
        self._folder = folder
        self._n = 0

    def __call__(self, name: str) -> None:
        self._n += 1
        self._page.screenshot(path=str(self._folder / f"{self._n:02d}-{name}.png"), full_page=True)
