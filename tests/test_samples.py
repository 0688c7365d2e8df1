"""The Datadog samples in tests/samples/datadog/ look like what Datadog sends.

A sample is one delivery, `<monitor>.<transition>.json` through our payload template or
`default-template.<monitor>.<transition>.json` through Datadog's untouched one (test_standalone
checks that they cover every transition). Here: each has exactly its template's fields, filled
the way Datadog fills them, and normalises to the monitor, date and template it stands for.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from responder.domain import Transition
from responder.intake.datadog import normalise
from tests.samples import SAMPLES

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "responder" / "intake" / "webhook-template.json"
RECEIVED = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
NAMES = sorted(path.name for path in SAMPLES.glob("*.json"))

# The four monitors of the README's lifecycles, by their Datadog monitor id.
MONITORS = {
    "payment-failure-rate": "148275309",
    "api-latency": "148275400",
    "fraud-detection-down": "148275511",
    "checkout-error-rate": "148275622",
}
# What Datadog's default webhook payload sends (Webhooks integration tile, payload untouched).
DEFAULT_TEMPLATE = {
    "body": "$EVENT_MSG",
    "last_updated": "$LAST_UPDATED",
    "event_type": "$EVENT_TYPE",
    "title": "$EVENT_TITLE",
    "date": "$DATE",
    "org": {"id": "$ORG_ID", "name": "$ORG_NAME"},
    "id": "$ID",
}
# File names spell a transition in lower case with dashes: "No Data" -> "no-data".
BY_SLUG = {t.value.lower().replace(" ", "-"): t for t in Transition}


def parse(name: str) -> tuple[str, str, Transition]:
    """(template, monitor, transition) from a sample's file name."""
    parts = name.removesuffix(".json").split(".")
    template = "default" if parts[0] == "default-template" else "responder"
    monitor, slug = parts[1:] if template == "default" else parts
    return template, monitor, BY_SLUG[slug]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def shape(value: Any) -> Any:
    """A JSON object's keys, nested, with each leaf's type: a template's leaves are all strings."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def test_there_are_samples() -> None:
    # An empty or missing folder would make the parametrized tests vanish rather than fail.
    assert NAMES


@pytest.mark.parametrize("name", NAMES)
def test_sample_normalises_to_the_transition_its_name_says(name: str) -> None:
    template, monitor, transition = parse(name)
    data = load(name)
    alert = normalise(data, RECEIVED)
    assert alert.transition is transition
    assert alert.template == template
    assert alert.date == datetime.fromtimestamp(int(data["date"]) / 1000, UTC)
    assert alert.source_id == data["id"]
    assert alert.monitor_id == MONITORS[monitor]
    if template == "responder":
        assert alert.tag_map  # our template always carries the monitor's tags
    else:
        assert alert.tags == ()
        assert any("minimal payload" in note for note in alert.notes)


def test_each_monitor_s_lifecycle_is_told_to_its_end() -> None:
    parsed = [parse(name) for name in NAMES]
    assert {monitor for _, monitor, _ in parsed} == set(MONITORS)
    for monitor in MONITORS:
        told = {t for template, m, t in parsed if m == monitor and template == "responder"}
        assert Transition.RECOVERED in told, monitor
        assert told - {Transition.RECOVERED}, monitor


@pytest.mark.parametrize("name", NAMES)
def test_sample_has_the_shape_of_its_template(name: str) -> None:
    template, _, _ = parse(name)
    blank = json.loads(TEMPLATE.read_text()) if template == "responder" else DEFAULT_TEMPLATE
    data = load(name)
    assert shape(data) == shape(blank)
    # Datadog's ids are decimal digits; its dates epoch milliseconds, as strings.
    assert re.fullmatch(r"\d{19}", data["id"])
    assert re.fullmatch(r"\d{13}", data["date"])
    assert data["last_updated"] == data["date"]


def test_one_delivery_has_one_id() -> None:
    for template in ("responder", "default"):
        ids = [load(name)["id"] for name in NAMES if parse(name)[0] == template]
        assert len(set(ids)) == len(ids), template


def test_an_alert_cycle_keeps_its_key() -> None:
    alerts = [normalise(load(n), RECEIVED) for n in NAMES if parse(n)[0] == "responder"]
    cycles: dict[str, set[tuple[str | None, str]]] = {}
    for alert in alerts:
        if alert.cycle_key is not None:
            cycles.setdefault(alert.cycle_key, set()).add((alert.monitor_id, alert.scope))
    assert all(len(groups) == 1 for groups in cycles.values()), cycles


def test_the_template_is_package_data() -> None:
    packaged = resources.files("responder.intake").joinpath("webhook-template.json")
    assert json.loads(packaged.read_text(encoding="utf-8")) == json.loads(TEMPLATE.read_text())


def test_the_readme_shows_the_packaged_template() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "`responder/intake/webhook-template.json`" in readme
    blocks = re.findall(r"```json\n(.*?)```", readme, flags=re.DOTALL)
    assert json.loads(TEMPLATE.read_text()) in [json.loads(block) for block in blocks]
