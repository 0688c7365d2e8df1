"""Fraud-detection alerts for the crash and fault tests, and what the vendors must hold after.

Each monitor `number` alerts in an env of its own, so that it is an incident of its own
(security.yaml groups by service and env). Its playbook pages (PagerDuty), opens a Datadog
incident and posts to #security-alerts; its recovery resolves the page and the Datadog
incident and turns the Slack root resolved. So whatever the faults, the vendors must hold
exactly one page, one Datadog incident and one Slack root per monitor.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson

from tests.fakes.slack import FakeSlack
from tests.samples import SAMPLES
from tests.vendors import Vendors

SECURITY_CHANNEL = "C0SECURITY"
_TRIGGERED = json.loads((SAMPLES / "fraud-detection-down.triggered.json").read_text())
_RENOTIFY = json.loads((SAMPLES / "fraud-detection-down.renotify.json").read_text())
_RECOVERED = json.loads((SAMPLES / "fraud-detection-down.recovered.json").read_text())


def tag(number: int) -> str:
    """The text that names monitor `number` in titles, and so in every vendor's record."""
    return f"fault-{number:05d}"


def triggered(number: int, delivery: int = 0) -> bytes:
    """Monitor `number` fires; each `delivery` is another Datadog event of the same alert."""
    return _body(_TRIGGERED, number, f"t{delivery}", "Triggered")


def renotified(number: int, delivery: int) -> bytes:
    """A reminder that monitor `number` still fires: told at most once an hour (by the
    alert's date), so a flood of them is load without further actions."""
    return _body(_RENOTIFY, number, f"n{delivery}", "Renotify")


def recovered(number: int) -> bytes:
    return _body(_RECOVERED, number, "r", "Recovered")


def _body(template: dict[str, Any], number: int, event: str, transition: str) -> bytes:
    data = json.loads(json.dumps(template))
    name = tag(number)
    now_ms = str(int(time.time() * 1000))
    data["id"] = f"{name}-{event}"
    data["date"] = data["last_updated"] = now_ms
    data["event_title"] = f"[{transition}] Fraud Detection System Down {name}"
    alert = data["alert"]
    alert["id"] = str(800000 + number)
    alert["cycle_key"] = f"cycle-{name}"
    alert["title"] = data["event_title"]
    data["tags"] = data["tags"].replace("env:prod", f"env:{name}")
    return orjson.dumps(data)


def event_id(body: bytes) -> str:
    """The Datadog event id a body carries (what the service keeps as `source_id`)."""
    return str(orjson.loads(body)["id"])


def problems(fakes: Vendors, numbers: range, *, recovered: bool) -> list[str]:
    """What the vendors hold that the playbook did not ask for, or lack (empty: all correct).

    One page per incident (one PagerDuty alert opened), one Datadog incident per
    incident, one Slack root per incident; with `recovered`, every one of them resolved.
    """
    found: list[str] = []
    pd, dd = fakes.pagerduty, fakes.datadog
    # A trigger sent again with the same dedup key (a retry of an attempt whose answer was
    # lost) is folded into the open alert by PagerDuty: a page is an alert opened.
    pages = Counter(e.dedup_key for e in pd.events() if e.action == "trigger")
    opened = Counter(e.dedup_key for e in pd.events() if e.outcome == "opened")
    found += [f"pagerduty: {opened[key]} pages for {key}" for key in pages if opened[key] != 1]
    if len(pages) != len(numbers):
        found.append(f"pagerduty: {len(pages)} dedup keys paged for {len(numbers)} incidents")
    incidents = Counter(_owner(i.title, numbers) for i in dd.incidents())
    slack_roots = Counter(_owner(m.text or "", numbers) for m in _roots(fakes.slack))
    for number in numbers:
        for vendor, counts in (("datadog incidents", incidents), ("slack roots", slack_roots)):
            if counts[number] != 1:
                found.append(f"{vendor}: {counts[number]} for {tag(number)}")
    for vendor, counts in (("datadog incidents", incidents), ("slack roots", slack_roots)):
        if counts[None]:
            found.append(f"{vendor}: {counts[None]} of no monitor of this test")
    if recovered:
        resolves = Counter(e.dedup_key for e in pd.events() if e.action == "resolve")
        found += [
            f"pagerduty: {key} resolved {resolves[key]} times"
            for key in pages
            if resolves[key] != 1
        ]
        found += [f"pagerduty: alert {a.dedup_key} still open" for a in pd.open_alerts()]
        found += [
            f"datadog: {i.title} is {i.state}" for i in dd.incidents() if i.state != "resolved"
        ]
    return found


def _roots(slack: FakeSlack) -> list[Any]:
    return list(slack.root_messages(SECURITY_CHANNEL))


def _owner(text: str, numbers: range) -> int | None:
    for number in numbers:
        if tag(number) in text:
            return number
    return None
