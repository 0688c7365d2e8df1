"""Alert text is data wherever it lands: it cannot mention, link, format or template.

An alert whose title, message, status, tags and scope carry Slack mrkdwn (`<!channel>`,
`<@U123>`, `<http://evil|click>`), Markdown (links, images, HTML, code fences, table pipes,
headings, `@handle` mentions), Jinja2 (`{{ ''.__class__ }}`, `{% for %}`), a CEL-looking
quote, CRLF and SQL goes through the whole service to the vendor fakes, triggered and then
recovered. What reached Slack and Datadog is then read back: every `<` in Slack text is one
of our own links or the playbook author's mention, every Markdown construct is one we
wrote, the values appear escaped, and no template in them was run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import integrations.pagerduty.actions as pagerduty_actions_module
from responder.main import Service
from tests.fakes.slack import FakeMessage
from tests.harness import post, running, sample
from tests.vendors import PAYMENTS_KEY, Vendors, settle, vendors

CHANNEL = "C0PAYMENTS"
SLACK_MARKUP = "<!channel> <!here> <@U123> <#C999> <!subteam^S1> <http://evil.example|click>"
MARKDOWN = (
    "[click](http://evil.example) ![img](http://evil.example/x.png) "
    "<script>alert(1)</script> | a | b | # not a heading @oncall-team `code` **bold**"
)
JINJA = "{{ ''.__class__ }} {% for x in range(3) %}X{% endfor %} {{7*7}}"
OTHER = "safe' || true || ' '; DROP TABLE incident; -- &lt;!here&gt;"
TITLE = f"Payments {SLACK_MARKUP} {MARKDOWN} {JINJA} {OTHER}"
MESSAGE = (
    f"First line {SLACK_MARKUP}\n```\n# Heading out of the fence\n{MARKDOWN}\n````\n"
    f"{JINJA}\r\nX-Injected: 1\n@oncall-team"
)
STATUS = f"{SLACK_MARKUP} {MARKDOWN} {JINJA}"

PLAYBOOKS = """
name: injected
description: every markup an alert can reach
match:
  tags: {service: payment}
actions:
  - pagerduty.trigger:
      severity: critical
      summary: "{{ alert.title }}"
  - datadog.incident:
      severity: SEV-2
  - datadog.notebook:
      related:
        - title: "Logs of {{ alert.tags.env }}"
          kind: logs
          query: "env:{{ alert.tags.env }}"
  - slack.post:
      channel: "#payments-alerts"
      mention: "<!here>"
      text: "Status {{ alert.status }} in {{ alert.tags.env }}: {{ alert.title }}"
---
name: guarded
description: a `when` that alert text must not be able to satisfy
match:
  tags: {service: payment}
  when: "alert.status == 'safe'"
actions:
  - slack.post:
      channel: "#payments-alerts"
      text: "the when expression was satisfied"
"""


def payload(samples_dir: Path, transition: str) -> dict[str, Any]:
    name = (
        "payment-failure-rate.triggered"
        if transition == "Triggered"
        else ("payment-failure-rate.recovered")
    )
    data = sample(samples_dir, name)
    data["event_title"] = data["alert"]["title"] = f"[{transition}] {TITLE}"
    data["event_msg"] = MESSAGE
    data["alert"]["status"] = f"safe' || true || ' {STATUS}"
    data["alert"]["scope"] = "host:<@U123>,region:[x](http://evil.example)"
    data["tags"] = f"service:payment,team:payments,env:{SLACK_MARKUP.replace(',', ' ')}"
    data["link"] = "https://app.datadoghq.com/event?id=1|click me> <!channel>"
    data["snapshot"] = "javascript:alert(1)"
    return data


@pytest.fixture
def service(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Vendors, Service, TestClient]]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    monkeypatch.setattr(pagerduty_actions_module, "EVENTS_INTERVAL", 0.0)
    (tmp_path / "injected.yaml").write_text(PLAYBOOKS)
    with vendors() as fakes:
        settings = fakes.settings(migrated_url, tmp_path, RESPONDER_SLACK_CHANNEL_INTERVAL="0")
        with running(settings) as (svc, client):
            yield fakes, svc, client


@pytest.fixture
def delivered(service: tuple[Vendors, Service, TestClient], samples_dir: Path) -> Vendors:
    fakes, svc, client = service
    for transition in ("Triggered", "Recovered"):
        response = post(client, payload(samples_dir, transition))
        assert response.status_code == 202, response.text
        # The CEL guard compared the text as a value: the quote in it is no operator.
        assert response.json()["playbooks"] in (["injected"], None), response.json()
        settle(svc)
    return fakes


# -- Slack -----------------------------------------------------------------------------------

OUR_LABELS = {"Monitor", "Event", "Graph snapshot", "Datadog incident", "RCA notebook"}
OUR_LINK = re.compile(r"<(https?://[^|<>\s]+)\|([^<>|]+)>")


def slack_texts(message: FakeMessage) -> list[tuple[str, str]]:
    """(kind, text) of every text Slack shows for a message, its edits included."""
    found: list[tuple[str, str]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
                found.append((value["type"], value["text"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for version in [{"text": message.text, "blocks": message.blocks}, *message.edits]:
        if version.get("text"):
            found.append(("text", version["text"]))
        walk(version.get("blocks"))
    return found


def test_slack_shows_alert_text_but_never_as_markup(delivered: Vendors) -> None:
    messages = delivered.slack.messages(CHANNEL)
    assert len(messages) >= 2, [m.text for m in messages]  # the root and the recovery
    authored_mentions = 0
    shown: list[str] = []
    for message in messages:
        for kind, sent in slack_texts(message):
            shown.append(sent)
            text = sent.removeprefix("<!here> ")  # the playbook's own `mention`, first
            authored_mentions += text != sent
            for url, label in OUR_LINK.findall(text):
                assert label in OUR_LABELS, (label, text)
                assert "evil.example" not in url and "|" not in url
            rest = OUR_LINK.sub("", text)
            # No other `<`: no mention, channel, user group or link the alert wrote.
            assert "<" not in rest and ">" not in rest, (kind, text)
    assert authored_mentions >= 1
    everything = "\n".join(shown)
    # The alert's text is shown, as text: escaped once, `&lt;` in it shown as written.
    for escaped in (
        "&lt;!channel&gt;",
        "&lt;@U123&gt;",
        "&lt;#C999&gt;",
        "&lt;!subteam^S1&gt;",
        "&lt;http://evil.example|click&gt;",
        "&amp;lt;!here&amp;gt;",
        "&lt;script&gt;",
    ):
        assert escaped in everything, escaped
    # Templates in alert text were never run.
    assert "{{ ''.__class__ }}" in everything and "{{7*7}}" in everything
    assert "{% for x in range(3) %}X{% endfor %}" in everything
    assert "class 'str'" not in everything and "XXX" not in everything
    assert "the when expression was satisfied" not in everything
    # The event link keeps its label: `|` and `>` in the URL cannot end it early.
    assert "%7Cclick%20me&gt;%20&lt;!channel&gt;|Event>" in everything
    assert "javascript:" not in everything


# -- Datadog ---------------------------------------------------------------------------------

FENCED = re.compile(r"^(`{3,})\n(.*?)\n\1$", re.MULTILINE | re.DOTALL)
MD_LINK = re.compile(r"(?<!\\)\[((?:[^\]\\]|\\.)*)\]\((https?://[^)\s]+)\)")
UNESCAPED = re.compile(r"(?<!\\)[\[\]<>|`!#*_]")


def datadog_markdown(fakes: Vendors) -> list[str]:
    texts: list[str] = []
    for notebook in fakes.datadog.notebooks():
        texts.extend(notebook.markdown())

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("cell_type") == "markdown":
                texts.append(str(value.get("content", {}).get("content", "")))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for incident in fakes.datadog.incidents():
        walk(incident.initial_cells)
    return texts


def test_datadog_markdown_holds_alert_text_only_escaped_or_fenced(delivered: Vendors) -> None:
    texts = datadog_markdown(delivered)
    assert len(texts) >= 3, texts  # incident cell, notebook summary and timeline, resolution
    everything = "\n".join(texts)
    assert "@oncall-team" not in everything  # broken with a zero-width space, fenced or not
    assert "@\u200boncall-team" in everything
    fences = 0
    for text in texts:
        # The monitor's message is fenced with a fence longer than any backtick run in it,
        # so its own ``` and ```` cannot close the block early.
        for fence, body in FENCED.findall(text):
            fences += 1
            assert len(fence) > max((len(r) for r in re.findall(r"`+", body)), default=0)
        inline = FENCED.sub("", text)
        for label, url in MD_LINK.findall(inline):
            assert "evil.example" not in url, (label, url)
        inline = MD_LINK.sub("", inline)
        for line in inline.splitlines():
            # Our own emphasis (**Service**:, _italic_), list bullets and headings aside,
            # nothing here is markup: every special character of the alert is escaped.
            stripped = re.sub(r"^(#{2,3} |- )", "", line)
            stripped = re.sub(r"(?<!\\)\*\*|^_.*_$|`[a-z_.]+`", "", stripped)
            assert not UNESCAPED.search(stripped), (line, UNESCAPED.findall(stripped))
    assert fences >= 1
    assert "\\[click\\]\\(http://evil.example\\)" in everything
    assert "\\!\\[img\\]" in everything and "\\<script\\>" in everything
    assert "\\| a \\| b \\|" in everything
    assert "{{ ''.__class__ }}" not in everything.replace("\\", "") or "class 'str'" not in (
        everything
    )
    assert "XXX" not in everything


def test_datadog_params_are_plain_data_not_markdown(delivered: Vendors) -> None:
    """Titles, queries and workflow inputs are no Markdown: a value goes in as it is, with
    no backslashes (a service `payments_api` stays `payments_api` in a query)."""
    env = SLACK_MARKUP.replace(",", " ")
    (notebook,) = delivered.datadog.notebooks()
    logs = [
        cell["attributes"]["definition"]
        for cell in notebook.cells
        if cell["attributes"]["definition"]["type"] == "log_stream"
    ]
    assert [(d["title"], d["query"]) for d in logs] == [(f"Logs of {env}", f"env:{env}")]


def test_pagerduty_gets_the_text_as_plain_data(delivered: Vendors) -> None:
    (alert,) = delivered.pagerduty.alerts()
    # Plain text, rendered once: the title as Datadog sent it (templates not run).
    assert alert.summary.startswith("[Triggered] Payments <!channel>")
    assert JINJA in alert.summary and "class 'str'" not in alert.summary
    assert not alert.open
    events = json.dumps([e.body for e in delivered.pagerduty.events()])
    assert "XXX" not in events
