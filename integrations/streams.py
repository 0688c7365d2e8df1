"""How an alert stream's facts read, in the same words for every vendor: reminders Datadog
sent, a monitor that stopped receiving data, an incident resolved as stale.

Shared by the vendors (which never import each other) so that Slack and Datadog tell one
story. Plain text only: each vendor escapes it for its own markup. Only the vendor contract
and the domain are read here, like in any integration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from responder.actions import ActionContext, IncidentView, format_duration
from responder.domain import Transition

STALE = "stale"  # IncidentView.resolution, and Alert.cause of the stale timer's event

_NO_DATA_WORDS = {
    Transition.NO_DATA: "the monitor stopped receiving data",
    Transition.RE_NO_DATA: "the monitor still receives no data",
}


def no_data_words(transition: Transition) -> str | None:
    """What No Data means, for people who would read it as recovered ("no alert data") or
    as one more failure; None for any other transition."""
    return _NO_DATA_WORDS.get(transition)


def resolved_as_stale(ctx: ActionContext) -> bool:
    """Whether responder resolved the incident itself because nothing arrived.

    The incident's own resolution decides once it is set; until then (a view read before
    the pipeline recorded why), the run's event tells: the stale timer's event is ours.
    """
    resolution = ctx.incident.resolution
    if resolution is not None:
        return resolution == STALE
    return ctx.alert.cause == STALE


def last_delivery_at(ctx: ActionContext) -> datetime:
    """The latest Datadog delivery that the run knows of: the opening, the latest reminder,
    or the run's own alert when Datadog sent it (a timer's event is not a delivery).

    A state change between reminders (Warn to Triggered) is not in the incident's view, so
    this can be earlier than the pipeline's own record; never later.
    """
    moments = [ctx.incident.opened_at]
    if ctx.incident.last_repeat_at is not None:
        moments.append(ctx.incident.last_repeat_at)
    if ctx.alert.cause is None:
        moments.append(ctx.alert.date)
    return max(moment.astimezone(UTC) for moment in moments)


def stale_resolved_at(ctx: ActionContext) -> datetime:
    """When responder gave up on the incident: our resolved_at, else the timer's event date."""
    return (ctx.incident.resolved_at or ctx.alert.date).astimezone(UTC)


def stale_summary(ctx: ActionContext) -> str:
    """ "Resolved as stale: no delivery for 1d, since 2026-11-22 22:00 UTC". Never "recovered":
    Datadog did not say so, the problem may still be there with its notifications gone."""
    last = last_delivery_at(ctx)
    quiet = stale_resolved_at(ctx) - last
    span = f" for {format_duration(quiet.total_seconds())}," if quiet.total_seconds() > 0 else ""
    return f"Resolved as stale: no delivery{span} since {last:%Y-%m-%d %H:%M} UTC"


def repeats_line(incident: IncidentView) -> str | None:
    """ "Repeated 7 times · last 03:40 UTC" while Datadog keeps reminding; None before any.

    The date is left out when the last reminder came the day the incident opened."""
    if incident.repeats <= 0:
        return None
    times = "1 time" if incident.repeats == 1 else f"{incident.repeats} times"
    last = incident.last_repeat_at
    if last is None:
        return f"Repeated {times}"
    last = last.astimezone(UTC)
    same_day = last.date() == incident.opened_at.astimezone(UTC).date()
    stamp = f"{last:%H:%M}" if same_day else f"{last:%Y-%m-%d %H:%M}"
    return f"Repeated {times} · last {stamp} UTC"
