"""What an action sees, built from the Datadog samples: for the integrations' own tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from responder.actions import ActionContext, IncidentView
from responder.domain import Alert, Transition
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
NO_DATA = sample_alert("checkout-error-rate.no-data")
RE_NO_DATA = sample_alert("checkout-error-rate.re-no-data")

# The payments incident as the stale timer finds it: seven reminders, the last one at 03:40
# the next morning, then a day of silence until responder resolved it itself.
LAST_REPEAT_AT = datetime(2026, 11, 23, 3, 40, tzinfo=UTC)
STALE_RESOLVED_AT = LAST_REPEAT_AT + timedelta(days=1)


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


def stale_incident(**overrides: Any) -> IncidentView:
    """The payments incident resolved as stale (see STALE_RESOLVED_AT); override any field."""
    values: dict[str, Any] = {
        "status": "resolved",
        "resolved_at": STALE_RESOLVED_AT,
        "resolution": "stale",
        "repeats": 7,
        "last_repeat_at": LAST_REPEAT_AT,
    }
    return incident_view(**(values | overrides))


def stale_event(**overrides: Any) -> Alert:
    """The event responder makes when the stale timer fires: no Datadog delivery behind it
    (no id, no event link), dated when the timer fired; it carries a recovery's transition
    so that the recovery follow-ups run."""
    values: dict[str, Any] = {
        "cause": "stale",
        "transition": Transition.RECOVERED,
        "date": STALE_RESOLVED_AT,
        "source_id": None,
        "title": "High Payment Failure Rate",
        "link": None,
        "snapshot": None,
        "status_text": None,
        "message": None,
    }
    return replace(TRIGGERED, **(values | overrides))


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
