"""What an action sees, built from the Datadog samples: for the integrations' own tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from responder.actions import ActionContext, IncidentView
from responder.domain import Alert
from responder.intake.datadog import normalise
from tests.samples import SAMPLES


def sample_alert(sample: str, **overrides: Any) -> Alert:
    """One of the Datadog samples through the real normaliser; override any field."""
    raw = json.loads((SAMPLES / f"{sample}.json").read_text(encoding="utf-8"))
    alert = normalise(raw, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    return replace(alert, **overrides)


TRIGGERED = sample_alert("payment-failure-rate.triggered")
RECOVERED = sample_alert("payment-failure-rate.recovered")
RENOTIFY = sample_alert("fraud-detection-down.renotify")


def incident_view(**overrides: Any) -> IncidentView:
    """The payments incident, open; override any field."""
    values: dict[str, Any] = {
        "id": "42",
        "key": "148275309:7716548234000001111",
        "status": "triggered",
        "title": "High Payment Failure Rate",
        "monitor_id": "148275309",
        "scope": "",
        "priority": "P1",
        "opened_at": TRIGGERED.date,
        "resolved_at": None,
        "refs": {},
    }
    return IncidentView(**(values | overrides))


def action_context(
    action: str,
    params: Mapping[str, Any] | None = None,
    *,
    alert: Alert = TRIGGERED,
    run_id: str = "7",
    attempt: int = 1,
    uncertain: bool = False,
    parent: Mapping[str, Any] | None = None,
    previous: Mapping[str, Any] | None = None,
    runs: Sequence[Mapping[str, Any]] = (),
    view: IncidentView | None = None,
) -> ActionContext:
    return ActionContext(
        run_id=run_id,
        action=action,
        params=params or {},
        incident=view or incident_view(),
        alert=alert,
        transition=alert.transition,
        idempotency_key=f"p:42:payments:{action}:{run_id}",
        attempt=attempt,
        uncertain=uncertain,
        parent=parent,
        previous=previous,
        runs=runs,
    )
