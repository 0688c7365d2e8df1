"""GET /api/incidents.csv and /api/incidents/{id}/report.md on both databases: RFC 4180
quoting, formula-injection safety, paging while streaming, the postmortem draft's content
and its escaping of alert text, the bearer token."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from responder.redact import Redactor
from responder.store import history
from responder.web import exports
from responder.web.api import HistoryApi
from responder.web.exports import COLUMNS, Exports, safe_cell
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, drain, post, running, sample, settings_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NASTY = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    'Disk, "full" on db-1',
    "[x](javascript:alert(1)) <script>alert(1)</script> @here #1 *bold* `code`",
]


def _nasty(samples_dir: Path, number: int, title: str) -> dict[str, Any]:
    body = sample(samples_dir, "api-latency.warn")
    body["id"] = f"99000000{number}"
    body["event_title"] = title
    body["alert"] = {
        **body["alert"],
        "id": f"77000{number}",
        "title": title,
        "cycle_key": f"88000{number}",
        "scope": f"host:h{number}",
    }
    return body


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, samples_dir: Path) -> str:
    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            for name in ("payment-failure-rate.triggered", "payment-failure-rate.recovered"):
                assert post(client, sample(samples_dir, name)).status_code == 202
                drain(service)
            for number, title in enumerate(NASTY):
                assert post(client, _nasty(samples_dir, number, title)).status_code == 202
                drain(service)
            items = client.get("/api/incidents", headers=AUTH).json()["items"]
            payments = next(i["id"] for i in items if i["monitor_id"] == "148275309")
            # Resolved already: the acknowledgement comes after, as late ones do.
            nasty = next(i["id"] for i in items if i["monitor_id"] == "770005")
            for incident_id, verb in ((nasty, "acknowledge"), (nasty, "resolve")):
                answer = client.post(
                    f"/api/incidents/{incident_id}/{verb}", json={"actor": "bob"}, headers=AUTH
                )
                assert answer.status_code == 202, answer.text
                drain(service)
            assert payments

    return restore(request, request.param, "exports-served", build)


@pytest.fixture
def client(served: str) -> Any:
    with running(settings_for(served)) as (_, test_client):
        yield test_client


def _incidents(client: TestClient, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/incidents", params=params, headers=AUTH).json()[
        "items"
    ]
    return items


def test_csv_is_rfc4180_and_formula_safe(client: TestClient) -> None:
    response = client.get("/api/incidents.csv", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.text
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == COLUMNS
    listed = _incidents(client)
    assert [int(row[0]) for row in rows[1:]] == [item["id"] for item in listed]
    titles = {row[COLUMNS.index("title")] for row in rows[1:]}
    # Every cell a spreadsheet would run starts with an apostrophe; the text is otherwise kept.
    assert "'" + NASTY[0] in titles and "'" + NASTY[1] in titles
    assert "'-2+3" in titles and "'@SUM(1+1)" in titles
    assert 'Disk, "full" on db-1' in titles
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    # RFC 4180: quotes doubled inside a quoted field.
    assert '"\'=HYPERLINK(""http://evil.example/x"",""click"")"' in text
    assert '"Disk, ""full"" on db-1"' in text


def test_csv_takes_the_filters_of_the_list(client: TestClient) -> None:
    response = client.get("/api/incidents.csv", params={"status": "resolved"}, headers=AUTH)
    rows = list(csv.reader(io.StringIO(response.text, newline="")))[1:]
    resolved = _incidents(client, status="resolved")
    assert len(resolved) == 2
    assert [int(row[0]) for row in rows] == [item["id"] for item in resolved]
    assert {row[COLUMNS.index("status")] for row in rows} == {"resolved"}
    by_q = client.get("/api/incidents.csv", params={"q": "Disk", "limit": "1"}, headers=AUTH)
    assert len(list(csv.reader(io.StringIO(by_q.text, newline="")))) == 2
    unknown = client.get("/api/incidents.csv", params={"status": "nope"}, headers=AUTH)
    assert unknown.status_code == 400
    assert "triggered, acknowledged, resolved" in unknown.json()["error"]


def test_csv_and_report_need_the_bearer_token(client: TestClient) -> None:
    number = _incidents(client)[0]["id"]
    for path in ("/api/incidents.csv", f"/api/incidents/{number}/report.md"):
        assert client.get(path).status_code == 401, path
        wrong = client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, path
        assert "HYPERLINK" not in wrong.text


def test_csv_is_sent_a_page_at_a_time(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export never holds the whole list: a header chunk, then one chunk per page."""
    monkeypatch.setattr(exports, "_PAGE", 3)
    engine = sa.create_engine(served)
    try:
        source = Exports(engine, HistoryApi(engine, API_TOKEN, insecure=False), Redactor([]))
        flt = replace(history.IncidentFilter(), limit=2**31 - 1)

        async def chunks() -> list[bytes]:
            return [chunk async for chunk in source._stream(flt)]

        got = asyncio.run(chunks())
    finally:
        engine.dispose()
    assert len(got) == 1 + 3  # 7 incidents in pages of 3
    rows = list(csv.reader(io.StringIO(b"".join(got).decode(), newline="")))
    assert len(rows) == 1 + 7


def test_safe_cell() -> None:
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("\t=1") == "'\t=1"
    assert safe_cell("plain, text") == "plain, text"
    assert safe_cell(None) == "" and safe_cell(12) == "12"


def test_report_is_a_postmortem_draft(client: TestClient) -> None:
    payments = next(i for i in _incidents(client) if i["monitor_id"] == "148275309")
    response = client.get(f"/api/incidents/{payments['id']}/report.md", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    text = response.text
    assert text.startswith(f"# Incident {payments['id']}: \\[Recovered\\] High Payment")
    assert "- **Opened:** 2026-11-22 22:00:00 UTC" in text
    assert "- **Resolved:** 2026-11-22 22:23:00 UTC" in text
    assert "- **Time to resolve:** 23m" in text
    assert "- **Time to acknowledge:** -" in text
    timeline = text.split("## Timeline (UTC)")[1].split("## Actions")[0]
    assert "Playbooks matched: payment-failure-rate" in timeline
    assert " UTC: " in timeline
    actions = text.split("## Actions")[1]
    assert "| pagerduty.trigger | payment-failure-rate | Triggered | skipped | 1 |" in actions
    assert "set SLACK\\_BOT\\_TOKEN" in actions


def test_report_names_who_answered_and_escapes_alert_text(client: TestClient) -> None:
    nasty = next(i for i in _incidents(client) if i["monitor_id"] == "770005")
    text = client.get(f"/api/incidents/{nasty['id']}/report.md", headers=AUTH).text
    assert " by bob (api)" in text
    assert "- **Time to acknowledge:** " in text and "**Time to acknowledge:** -" not in text
    # Alert text cannot link, run HTML, mention or format where the draft is pasted.
    assert "\\[x\\](javascript:alert(1))" in text and "[x](" not in text
    assert "\\<script\\>" in text and "<script>" not in text
    assert "@\u200bhere" in text and "@here" not in text
    assert "\\*bold\\*" in text and "\\`code\\`" in text


def test_report_of_an_unknown_or_impossible_incident(client: TestClient) -> None:
    assert client.get("/api/incidents/99999/report.md", headers=AUTH).status_code == 404
    assert client.get("/api/incidents/x1/report.md", headers=AUTH).status_code == 400
