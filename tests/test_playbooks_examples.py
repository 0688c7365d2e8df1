"""The example playbooks in playbooks/: they load, and each Datadog sample selects the right one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from responder.actions import StepParams
from responder.domain import Alert
from responder.intake.datadog import normalise
from responder.main import build_registry
from responder.playbooks import Playbook, load_playbooks, render_params, select
from responder.settings import Settings
from tests.samples import SAMPLES

REPO = Path(__file__).resolve().parents[1]


# The service's own actions, as `responder serve` builds them (no credentials needed).
REGISTRY = build_registry(Settings())
MODELS: dict[str, type[StepParams]] = REGISTRY.params_models()
MARKUP = {name: REGISTRY.get(name).markup for name in REGISTRY.names()}

# Recoveries select nothing on purpose: the service undoes what the trigger did by itself.
EXPECTED: dict[str, list[str]] = {
    "payment-failure-rate.triggered.json": ["payment-failure-rate"],
    "payment-failure-rate.recovered.json": [],
    "default-template.payment-failure-rate.triggered.json": ["payment-failure-rate-minimal"],
    "api-latency.warn.json": ["api-latency"],
    "api-latency.triggered.json": ["api-latency"],
    "api-latency.recovered.json": [],
    "fraud-detection-down.triggered.json": ["fraud-detection-down"],
    "fraud-detection-down.renotify.json": ["fraud-detection-down"],
    "fraud-detection-down.recovered.json": [],
    "checkout-error-rate.triggered.json": ["checkout-error-rate"],
    "checkout-error-rate.recovered.json": [],
    "payment-failure-rate.re-triggered.json": ["payment-failure-rate"],
    "fraud-detection-down.warn.json": ["fraud-detection-down"],
    "fraud-detection-down.re-warn.json": ["fraud-detection-down"],
    "checkout-error-rate.no-data.json": ["checkout-error-rate"],
    "checkout-error-rate.re-no-data.json": ["checkout-error-rate"],
    "default-template.payment-failure-rate.recovered.json": [],
}


@pytest.fixture(scope="module")
def playbooks() -> list[Playbook]:
    return load_playbooks(REPO / "playbooks", MODELS)


def sample_alert(name: str) -> Alert:
    data = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return normalise(data, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))


def test_every_sample_has_an_expectation() -> None:
    assert sorted(path.name for path in SAMPLES.glob("*.json")) == sorted(EXPECTED)


def test_all_example_playbooks_load(playbooks: list[Playbook]) -> None:
    assert [p.name for p in playbooks] == [
        "checkout-error-rate",
        "unrouted",
        "payment-failure-rate",
        "payment-failure-rate-minimal",
        "api-latency",
        "fraud-detection-down",
    ]
    assert [p.name for p in playbooks if p.fallback] == ["unrouted"]
    assert all(p.description for p in playbooks)


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_selects_intended_playbook(playbooks: list[Playbook], sample: str) -> None:
    alert = sample_alert(sample)
    assert [p.name for p in select(playbooks, alert)] == EXPECTED[sample]


@pytest.mark.parametrize("sample", sorted(name for name, wanted in EXPECTED.items() if wanted))
def test_selected_steps_render_to_valid_params(playbooks: list[Playbook], sample: str) -> None:
    alert = sample_alert(sample)
    context: dict[str, Any] = {"alert": alert.as_context(), "incident": {"id": "inc-1"}}
    for playbook in select(playbooks, alert):
        assert playbook.actions, playbook.name
        for step in playbook.actions:
            rendered = render_params(step.params, context, MARKUP[step.action])
            params = MODELS[step.action].model_validate(rendered)
            assert "{{" not in json.dumps(params.model_dump(), default=str)


def test_an_alert_nobody_owns_reaches_the_fallback(playbooks: list[Playbook]) -> None:
    data = json.loads((SAMPLES / "checkout-error-rate.triggered.json").read_text(encoding="utf-8"))
    data["tags"] = "env:prod,service:search,team:discovery"
    alert = normalise(data, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    [chosen] = select(playbooks, alert)
    assert chosen.name == "unrouted"
    assert chosen.actions[0].params["channel"] == "#alerts-unrouted"
