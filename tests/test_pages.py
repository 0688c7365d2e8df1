"""The web pages, server side: login (API token or a trusted proxy's header), CSRF refusals,
security headers, the list's filters, an incident's story with its reasons, the acknowledge
button, the stats, and no secret on any page. Real database, the real pipeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.store.tables import ActionRun, AuditEntry, Incident
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, SLACK_TOKEN, TOKEN, drain, running, settings_for
from tests.test_api import CHECKOUT, FRAUD, HISTORY, LATENCY, PAYMENTS, deliver

PAGES = ["/", "/incidents/1", "/stats", "/?priority=P1"]
PROXY_HEADER = "X-Forwarded-User"
Pair = tuple[Service, TestClient]


def _build(samples_dir: Path) -> Any:
    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            deliver(service, client, samples_dir, *HISTORY)

    return build


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, samples_dir: Path) -> Iterator[Pair]:
    """The service on a database holding the API tests' history (four incidents), with a
    Slack token configured, so a secret exists that no page may show."""
    url = restore(request, request.param, "pages-history", _build(samples_dir))
    with running(settings_for(url, SLACK_BOT_TOKEN=SLACK_TOKEN)) as pair:
        yield pair


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, name: str = "alice") -> None:
    form = client.get("/login")
    data = {"csrf": csrf_of(form.text), "name": name, "token": API_TOKEN, "next": "/stats"}
    response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/stats"


def incident_id(service: Service, monitor_id: str) -> int:
    with Session(service.engine) as session:
        found = session.exec(select(Incident).where(Incident.monitor_id == monitor_id)).one()
    assert found.id is not None
    return found.id


def listed(client: TestClient, **params: str) -> list[int]:
    response = client.get("/", params=params)
    assert response.status_code == 200, response.text
    return [int(n) for n in re.findall(r'href="/incidents/(\d+)"', response.text)]


def test_every_page_sends_a_stranger_to_the_login(site: Pair) -> None:
    _, client = site
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path
    # A form sent without a session changes nothing and is not sent again after the login.
    sent = client.post("/incidents/1/acknowledge", data={"csrf": "x"}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/login?next=%2F"
    # A forged session cookie is no session.
    client.cookies.set("responder_session", "eyJ1IjoibWFsbG9yeSIsImV4cCI6OTk5OTk5OTk5OX0.AAAA")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_api_token_logs_in_and_a_wrong_one_does_not(site: Pair) -> None:
    _, client = site
    form = client.get("/login")
    data = {"csrf": csrf_of(form.text), "name": "mallory", "token": TOKEN, "next": "/"}
    refused = client.post("/login", data=data, follow_redirects=False)
    assert refused.status_code == 401
    assert "not the API token" in refused.text
    assert "responder_session" not in refused.headers.get("set-cookie", "")
    log_in(client)
    page = client.get("/")
    assert page.status_code == 200
    assert "alice" in page.text
    logout = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert logout.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_goes_back_only_to_a_path_of_this_site(site: Pair) -> None:
    _, client = site
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        form = client.get("/login")
        data = {"csrf": csrf_of(form.text), "name": "a", "token": API_TOKEN, "next": target}
        response = client.post("/login", data=data, follow_redirects=False)
        assert response.headers["location"] == "/", target


def test_every_form_is_refused_without_its_csrf_token(site: Pair) -> None:
    service, client = site
    form = client.get("/login")
    data = {"name": "alice", "token": API_TOKEN, "next": "/"}
    for csrf in (None, "forged", csrf_of(form.text) + "x"):
        sent = data if csrf is None else {**data, "csrf": csrf}
        response = client.post("/login", data=sent, follow_redirects=False)
        assert response.status_code == 403, csrf
    log_in(client)
    fraud = incident_id(service, FRAUD)
    # Another browser's token does not do either: it is bound to this browser's cookie.
    other = TestClient(service.app)
    stolen = csrf_of(other.get("/login").text)
    for verb in ("acknowledge", "resolve"):
        for csrf in ("", stolen):
            response = client.post(f"/incidents/{fraud}/{verb}", data={"csrf": csrf})
            assert response.status_code == 403, (verb, csrf)
    assert client.post("/logout", data={"csrf": stolen}).status_code == 403
    # A token given for this very browser cookie while signed out (the public login page,
    # which a cookie planted from a sibling domain could ask) is no signed-in form's token.
    planted = TestClient(service.app)
    planted.cookies.set("responder_csrf", client.cookies["responder_csrf"])
    anonymous = csrf_of(planted.get("/login").text)
    response = client.post(f"/incidents/{fraud}/acknowledge", data={"csrf": anonymous})
    assert response.status_code == 403
    drain(service)
    with Session(service.engine) as session:
        found = session.get(Incident, fraud)
        assert found is not None
        assert found.status == "triggered" and found.acknowledged_at is None


def test_every_page_sends_the_security_headers_and_runs_no_script(site: Pair) -> None:
    _, client = site
    login = client.get("/login")
    log_in(client)
    for response in [login, *(client.get(path) for path in PAGES)]:
        assert response.status_code == 200
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert "<script" not in response.text.lower()
        assert " style=" not in response.text  # the CSP would refuse it
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [CHECKOUT, FRAUD, LATENCY, PAYMENTS]),
        ({"priority": "P1"}, [FRAUD, PAYMENTS]),
        ({"priority": "P1", "service": "payment"}, [PAYMENTS]),
        ({"service": "checkout-service"}, [CHECKOUT]),
        ({"team": "platform"}, [LATENCY]),
        ({"status": "resolved"}, [PAYMENTS]),
        ({"status": "triggered", "priority": "P1"}, [FRAUD]),
        ({"q": "fraud"}, [FRAUD]),
        ({"q": "%"}, []),
        ({"since": "2026-11-22", "until": "2026-11-22"}, [CHECKOUT, FRAUD, LATENCY, PAYMENTS]),
        ({"since": "2026-11-23"}, []),
        ({"until": "2026-11-21"}, []),
    ],
)
def test_the_list_filters(site: Pair, params: dict[str, str], expected: list[str]) -> None:
    service, client = site
    log_in(client)
    assert listed(client, **params) == [incident_id(service, m) for m in expected]


def test_the_list_pages_by_cursor_newest_first(site: Pair) -> None:
    service, client = site
    log_in(client)
    from responder.web import pages

    ids = [incident_id(service, m) for m in (CHECKOUT, FRAUD, LATENCY, PAYMENTS)]
    old = pages.PAGE_SIZE
    pages.PAGE_SIZE = 3
    try:
        page = client.get("/")
        shown = [int(n) for n in re.findall(r'href="/incidents/(\d+)"', page.text)]
        assert shown == ids[:3]
        older = re.search(r'href="/\?([^"]+)" rel="next"', page.text)
        assert older, "no link to older incidents"
        rest = client.get("/?" + older.group(1).replace("&amp;", "&"))
        assert [int(n) for n in re.findall(r'href="/incidents/(\d+)"', rest.text)] == ids[3:]
        assert 'rel="next"' not in rest.text
    finally:
        pages.PAGE_SIZE = old


@pytest.mark.parametrize(
    "params",
    [{"status": "sleeping"}, {"within": "1y"}, {"since": "last week"}, {"cursor": "-1"}],
)
def test_a_malformed_filter_is_a_400_that_says_why(site: Pair, params: dict[str, str]) -> None:
    _, client = site
    log_in(client)
    response = client.get("/", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.text


def test_the_incident_page_tells_every_step_with_its_reason(site: Pair) -> None:
    service, client = site
    log_in(client)
    page = client.get(f"/incidents/{incident_id(service, PAYMENTS)}")
    assert page.status_code == 200
    text = page.text
    assert "High Payment Failure Rate" in text
    assert "Playbooks matched: payment-failure-rate" in text
    # Each other playbook, with the matcher that failed it.
    assert re.search(r"fraud-detection-down did not match: [^<]+", text)
    assert "Planned pagerduty.trigger (playbook payment-failure-rate, step 0)" in text
    assert "pagerduty.trigger skipped (attempt 1)" in text
    assert "Why: no PagerDuty routing key" in text
    assert "Incident resolved: triggered → resolved (Recovered)" in text
    assert "2026-11-22 22:23:00 UTC" in text  # resolved at, Datadog's time, in UTC
    assert "after 23m" in text
    assert 'action="/incidents/' not in text  # resolved: no buttons
    fraud = client.get(f"/incidents/{incident_id(service, FRAUD)}").text
    assert "Why: a repeat of an open incident: playbooks run once per incident" in fraud
    assert "suppressed" in fraud and "reminder interval" in fraud
    assert ">Acknowledge</button>" in fraud and ">Resolve</button>" in fraud
    assert client.get("/incidents/999999").status_code == 404
    assert client.get("/incidents/abc").status_code == 400


def test_the_postmortem_draft_downloads_from_the_page(site: Pair) -> None:
    service, client = site
    number = incident_id(service, PAYMENTS)
    path = f"/incidents/{number}/report.md"
    stranger = client.get(path, follow_redirects=False)
    assert stranger.status_code == 303 and stranger.headers["location"].startswith("/login")
    log_in(client)
    assert f'href="{path}" download' in client.get(f"/incidents/{number}").text
    draft = client.get(path)
    assert draft.status_code == 200
    assert draft.headers["content-type"].startswith("text/markdown")
    disposition = draft.headers["content-disposition"]
    assert disposition == f'attachment; filename="incident-{number}-postmortem.md"'
    assert draft.text.startswith("# ") and "Time to resolve:** 23m" in draft.text
    # The same draft the API gives.
    api = client.get(
        f"/api/incidents/{number}/report.md", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert api.text == draft.text
    assert client.get("/incidents/999999/report.md").status_code == 404


def test_acknowledge_from_the_page_is_applied_and_shown(site: Pair) -> None:
    service, client = site
    log_in(client, "alice")
    fraud = incident_id(service, FRAUD)
    page = client.get(f"/incidents/{fraud}")
    data = {"csrf": csrf_of(page.text), "reference": "abc123"}
    sent = client.post(f"/incidents/{fraud}/acknowledge", data=data, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/incidents/{fraud}?notice=acknowledge"
    # The same form sent twice counts once.
    again = client.post(f"/incidents/{fraud}/acknowledge", data=data, follow_redirects=False)
    assert again.status_code == 303
    assert "Acknowledgement sent" in client.get(sent.headers["location"]).text
    drain(service)
    shown = client.get(sent.headers["location"]).text
    assert "Acknowledgement sent" not in shown  # applied: the notice has done its work
    assert 'class="badge acknowledged"' in shown
    assert "by alice (web)" in shown
    assert ">Acknowledge</button>" not in shown
    with Session(service.engine) as session:
        kinds = session.exec(select(AuditEntry.kind).where(AuditEntry.incident_id == fraud)).all()
    assert kinds.count("incident.acknowledged") == 1
    later = client.post(
        f"/incidents/{fraud}/acknowledge", data={"csrf": data["csrf"]}, follow_redirects=False
    )
    assert later.headers["location"].endswith("notice=already")


def test_a_trusted_proxy_names_the_person(
    samples_dir: Path, request: pytest.FixtureRequest
) -> None:
    url = restore(request, "sqlite", "pages-history", _build(samples_dir))
    settings = settings_for(url, RESPONDER_TRUSTED_USER_HEADER=PROXY_HEADER)
    with running(settings) as (service, client):
        assert client.get("/", follow_redirects=False).status_code == 303
        client.headers[PROXY_HEADER] = "bob"
        page = client.get("/")
        assert page.status_code == 200 and "bob" in page.text
        assert "Log out" not in page.text  # the proxy signs people out, not us
        fraud = incident_id(service, FRAUD)
        csrf = csrf_of(client.get(f"/incidents/{fraud}").text)
        client.post(f"/incidents/{fraud}/resolve", data={"csrf": csrf})
        drain(service)
        with Session(service.engine) as session:
            found = session.get(Incident, fraud)
            assert found is not None
            assert found.status == "resolved" and found.resolved_by == "bob (web)"


def test_the_stats_page_shows_times_per_team_and_charts(site: Pair) -> None:
    _, client = site
    log_in(client)
    # The history is dated 2026-11-22; the default window (the last 30 days) follows the
    # clock, so the test names its window.
    page = client.get("/stats", params={"since": "2026-11-20", "until": "2026-11-25"})
    assert page.status_code == 200
    text = page.text
    assert "4 incidents" in text
    teams = re.search(r'<table class="timings" id="teams">(.*?)</table>', text, re.S)
    assert teams
    rows = re.findall(
        r"<tr><td[^>]*>([^<]+)</td><td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td>"
        r"<td[^>]*>([^<]+)</td></tr>",
        teams.group(1),
    )
    assert ("payments", "1", "-", "23m") in rows
    assert ("security", "1", "-", "-") in rows
    assert text.count("<svg") >= 3
    assert "<rect" in text  # the incidents-per-day bars
    assert "High Payment Failure Rate (148275309)" in text  # among the noisiest monitors
    empty = client.get("/stats", params={"since": "2026-10-01", "until": "2026-10-05"}).text
    assert "0 incidents" in empty and "23m" not in empty
    assert client.get("/stats", params={"since": "soon"}).status_code == 400
    # A long span is charted by week, its figures the same.
    year = client.get("/stats", params={"since": "2026-01-01", "until": "2026-12-31"}).text
    assert "Incidents per week" in year and "Incidents per day" not in year
    assert ("payments", "1", "-", "23m") in re.findall(
        r"<tr><td[^>]*>([^<]+)</td><td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td><td[^>]*>([^<]+)</td>",
        year,
    )


def test_no_page_shows_a_secret(site: Pair) -> None:
    service, client = site
    payments = incident_id(service, PAYMENTS)
    leak = f"slack said: invalid_auth for {SLACK_TOKEN}"
    with Session(service.engine) as session:
        run = session.exec(select(ActionRun).where(ActionRun.incident_id == payments)).first()
        assert run is not None
        run.state, run.last_error = "failed", leak
        session.add(run)
        session.commit()
    log_in(client)
    for path in [*PAGES, f"/incidents/{payments}", "/login"]:
        body = client.get(path).text
        for secret in (SLACK_TOKEN, API_TOKEN, TOKEN):
            assert secret not in body, (path, secret)
    assert "[REDACTED]" in client.get(f"/incidents/{payments}").text
