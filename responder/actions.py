"""The contract between the runner and every vendor integration.

An integration implements `Action` for each verb it offers (`slack.post`, ...). Actions never
sleep and never retry: they raise `ActionError` and the runner owns backoff, Retry-After and
deadlines. Integrations import this module and their SDK, nothing else from responder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from responder.domain import Alert, Transition


class StepParams(BaseModel):
    """Base for an action's parameters as written in a playbook step: strict, no extras."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=StepParams)


def step_params(model: type[P], ctx: ActionContext) -> P:
    """A run's params as `model`; a permanent ActionError naming each problem otherwise.

    Raised outside the `except` block: pydantic's error keeps the input (perhaps a secret
    pasted into a playbook), and even `from None` would keep it as `__context__`.
    """
    problems = ""
    try:
        return model.model_validate(dict(ctx.params))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
            for error in exc.errors()
        )
    raise ActionError(f"{ctx.action}: invalid params: {problems}", retryable=False)


def retry_seconds(value: object) -> float | None:
    """Seconds from a Retry-After (or rate-limit reset) header; None for a date or garbage."""
    if value is None:
        return None
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time from a context or a vendor's answer, as aware UTC; None when absent
    or unreadable. The service stores UTC everywhere, so a naive time can only mean UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())  # 3.11 also reads a trailing "Z"
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """One spelling of an instant for vendors and audits, whatever zone it was read in."""
    return moment.astimezone(UTC).isoformat()


def text_or_none(value: object) -> str | None:
    """Text from an untyped place (a ref, a run summary, a param), stripped; None when blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """750 -> "12m 30s", 90_061 -> "1d 1h 1m", 90_005 -> "1d 1h": the three units from the
    largest one present, zeros left out. Seconds next to days would be noise (and a "1d 5s"
    reads like a typo); whoever needs the exact figure gets the seconds themselves."""
    left = max(int(seconds), 0)
    counts: list[tuple[int, str]] = []
    for unit, size in _DURATION_UNITS:
        count, left = divmod(left, size)
        if count or counts:
            counts.append((count, unit))
    return " ".join(f"{count}{unit}" for count, unit in counts[:3] if count) or "0s"


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What an action may know about the incident it works for, read fresh before each attempt."""

    id: str
    key: str
    status: str
    title: str
    monitor_id: str | None
    scope: str
    priority: str | None
    opened_at: datetime  # aware
    resolved_at: datetime | None  # when we marked it resolved, not when Datadog saw it recover
    refs: Mapping[str, Any]
    repeats: int = 0  # reminders Datadog sent for it (Renotify, Re-Triggered, ...)
    last_repeat_at: datetime | None = None  # Datadog's date of the latest of them
    # Why it was resolved: "recovered" (Datadog said so), "stale" (nothing arrived for
    # RESPONDER_STALE_AFTER); None while open.
    resolution: str | None = None
    seen_at: datetime | None = None  # Datadog's date of the newest delivery
    members: int = 1  # monitor + scope groups a grouped incident holds (`group_by`)
    firing: int = 1  # of them, still firing
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None  # "alice (slack)"
    resolved_by: str | None = None  # set when a person resolved it, not a recovery


@dataclass(frozen=True, slots=True)
class ActionContext:
    run_id: str
    action: str
    params: Mapping[str, Any]  # rendered, validated by the action's `params` model
    incident: IncidentView
    alert: Alert  # of the event that planned this run
    transition: Transition
    idempotency_key: str
    attempt: int  # 1 for the first try
    uncertain: bool  # an earlier attempt started and never recorded an outcome
    parent: Mapping[str, Any] | None = None  # result of the run this follow-up continues
    # This run's own last response when the previous attempt asked to be polled again
    # (`ActionResult.poll_after`), e.g. the workflow instance it started.
    previous: Mapping[str, Any] | None = None
    # The incident's other runs so far, oldest first: {"action", "playbook", "state",
    # "finished_at", "error"}; filled only for actions whose `wants_runs` is True.
    runs: Sequence[Mapping[str, Any]] = ()

    @property
    def may_have_acted(self) -> bool:
        """Whether an earlier attempt may have done the work: one with no recorded outcome,
        or any retry (a timeout can lose the answer to a call the vendor carried out)."""
        return self.uncertain or self.attempt > 1

    # The alert's facts first, the incident's for what this alert leaves out: a payload from
    # Datadog's default template has no priority and no scope, and maybe no monitor id.

    @property
    def priority(self) -> str | None:
        return self.alert.priority or self.incident.priority

    @property
    def monitor_id(self) -> str | None:
        return self.alert.monitor_id or self.incident.monitor_id

    @property
    def scope(self) -> str:
        return self.alert.scope or self.incident.scope

    @property
    def recovered_at(self) -> datetime | None:
        """When the problem ended, if it has: a recovery's own time (Datadog's, which our
        resolved_at trails by the delivery), else when the incident was marked resolved.
        Any other alert's date is when it fired, which says nothing about the recovery."""
        if self.alert.transition.is_recovery:
            return self.alert.date
        return self.incident.resolved_at

    @property
    def time_to_recover(self) -> timedelta | None:
        """From opening to recovery; None before a recovery, or if clocks put it first."""
        recovered = self.recovered_at
        if recovered is None or recovered < self.incident.opened_at:
            return None
        return recovered - self.incident.opened_at


# --- How an alert stream's facts read, in the same words for every vendor --------------
# Reminders Datadog sent, a monitor that stopped receiving data, an incident resolved as
# stale: Slack and Datadog (which never import each other) tell one story. Plain text only:
# each vendor escapes it for its own markup.

STALE = "stale"  # IncidentView.resolution, and Alert.cause of the stale timer's event
ACKNOWLEDGE = "acknowledge"  # Alert.cause of the event a person's acknowledgement makes
RESOLVE = "resolve"  # Alert.cause of a person's resolve, and IncidentView.resolution then

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


def resolved_by_person(ctx: ActionContext) -> str | None:
    """Who resolved the incident by hand ("alice (slack)"), when a person did."""
    if ctx.incident.resolved_by:
        return ctx.incident.resolved_by
    return ctx.alert.actor if ctx.alert.cause == RESOLVE else None


def acknowledged_line(ctx: ActionContext) -> str | None:
    """ "Acknowledged by alice (slack) at 03:12 UTC", once someone has."""
    who = ctx.incident.acknowledged_by
    if who is None and ctx.alert.cause == ACKNOWLEDGE:
        who = ctx.alert.actor
    if who is None:
        return None
    moment = ctx.incident.acknowledged_at or (
        ctx.alert.date if ctx.alert.cause == ACKNOWLEDGE else None
    )
    return f"Acknowledged by {who}" + (
        f" at {moment.astimezone(UTC):%H:%M} UTC" if moment is not None else ""
    )


def last_delivery_at(ctx: ActionContext) -> datetime:
    """The date of the latest Datadog delivery the incident had (a timer's event is not a
    delivery): what the pipeline recorded, else the latest the run itself can see."""
    moments = [ctx.incident.opened_at]
    for moment in (ctx.incident.seen_at, ctx.incident.last_repeat_at):
        if moment is not None:
            moments.append(moment)
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


def members_line(incident: IncidentView) -> str | None:
    """ "60 alerts grouped · 55 firing" for an incident that holds several (`group_by`)."""
    if incident.members <= 1:
        return None
    return f"{incident.members} alerts grouped · {incident.firing} firing"


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


@dataclass(frozen=True, slots=True)
class ActionResult:
    """A finished call: what to audit, and references to keep on the incident."""

    response: Mapping[str, Any]  # a summary, secrets excluded
    refs: Mapping[str, Any] = field(default_factory=dict)
    skipped_reason: str | None = None  # set when there was nothing to do (e.g. no root post)
    # The call started something that is not final yet (a workflow instance): the runner
    # keeps the run pending and calls `execute` again after this many seconds, passing
    # `response` back as `ActionContext.previous`. Not an error, not counted as a retry.
    poll_after: float | None = None
    # How the vendor names our incident, by kind ({"pagerduty": dedup key}): what an inbound
    # webhook of that vendor finds the incident by.
    names: Mapping[str, str] = field(default_factory=dict)


class ActionError(Exception):
    """A failed call. `retryable` decides between a rescheduled retry and an immediate failure."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        response: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.response = dict(response or {})


@dataclass(frozen=True, slots=True)
class Pace:
    """At most one call per `interval` seconds among calls sharing `key`."""

    key: str
    interval: float


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A run to plan after a primary run, when a later transition reaches its incident."""

    action: str
    params: Mapping[str, Any]


class Action(Protocol):
    """What every vendor's action implements. A class may also subclass it explicitly, to
    inherit the defaults: no timeline, no follow-up, no pace of our own."""

    name: ClassVar[str]  # "vendor.verb"
    params: ClassVar[type[StepParams]]
    # True when `execute` reads `ActionContext.runs` (one more query per attempt).
    wants_runs: ClassVar[bool] = False
    # How alert text rendered into this action's templates is escaped: "slack", "markdown", "plain".
    markup: ClassVar[str]
    # The variables to set when `configured` is False, e.g. "DD_API_KEY and DD_APP_KEY": the
    # skipped run's reason and `responder serve`'s start-up report name them.
    needs: ClassVar[str] = ""

    @property
    def configured(self) -> bool:
        """False when credentials are missing: runs are recorded as skipped, not sent."""
        ...

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        """The request this run would send (secrets excluded); audited before every attempt."""
        ...

    def execute(self, ctx: ActionContext) -> ActionResult:
        """Make the outside call once. Runs in a worker thread; may block on I/O, never sleeps."""
        ...

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        """What a later transition of the incident should do about this step, if anything."""
        return None

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        """What a person's acknowledgement of the incident should do about this step."""
        return None

    def pace(self, ctx: ActionContext) -> Pace | None:
        """The vendor limit this call counts against (a Slack channel, a routing key), if any.
        None leaves the vendor's own limit to its 429s, which the runner honours."""
        return None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The actions that keep an incident's conversation with people (a chat thread): the
    composition root names them, so the core can tell the thread about other runs without
    knowing which vendor holds it."""

    root: str  # opens the conversation; its first success is where the thread is
    reply: str  # tells the thread something (params: channel, notice)
    refresh: str  # rewrites the root message with the incident's links
    # Storm mode: posts, then rewrites, one summary of a channel's alert storm instead of
    # the roots it holds back (params: channel, update, figures). None: no storm mode.
    summary: str | None = None

    @property
    def vendor(self) -> str:
        """Runs of this vendor are the conversation itself: it is never told about them."""
        return self.root.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Link:
    title: str
    url: str


# What each vendor keeps in `IncidentView.refs`, by key. Every ref is a dict; one with a
# "url" is something people can open, and every vendor may link to it by that convention
# alone, without importing the vendor that made it.
REF_TITLES: Mapping[str, str] = {
    "slack": "Slack thread",
    "pagerduty": "PagerDuty incident",
    "datadog_incident": "Datadog incident",
    "datadog_notebook": "RCA notebook",
    "datadog_workflow": "Datadog workflow",
}


def incident_links(refs: Mapping[str, Any], *, exclude: str | None = None) -> list[Link]:
    """The openable things other runs made for this incident, in a stable order."""
    links: list[Link] = []
    for key in sorted(
        refs, key=lambda k: (list(REF_TITLES).index(k) if k in REF_TITLES else 99, k)
    ):
        ref = refs[key]
        if key == exclude or not isinstance(ref, Mapping):
            continue
        url = ref.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            title = ref.get("title")
            links.append(Link(str(title) if title else REF_TITLES.get(key, key), url))
    return links


class Registry:
    """All actions the service knows, by name. Built once in `responder.main`."""

    def __init__(self, actions: list[Action]) -> None:
        self._actions = {action.name: action for action in actions}

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            raise KeyError(f"unknown action {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._actions)

    def params_models(self) -> dict[str, type[StepParams]]:
        return {name: action.params for name, action in self._actions.items()}


# --- requests people make from a chat tool ------------------------------------------------------
# The other direction of the contract: the chat tool's integration verifies and reads its own
# requests (signatures and payloads are the vendor's business); the web layer, which may not
# import integrations, gets them through `ChatGate` as plain records.

BUTTON_ACK = "responder.ack"  # action ids of the incident's buttons, and what each one asks
BUTTON_RESOLVE = "responder.resolve"
BUTTON_SILENCE = "responder.silence"
BUTTON_WORDS = {BUTTON_ACK: "ack", BUTTON_RESOLVE: "resolve", BUTTON_SILENCE: "silence"}
BUTTON_SILENCE_FOR = "1h"


class ChatUnverified(Exception):
    """The request's signature is missing, wrong or stale, or no secret is configured to
    check one; the message says which, and never holds the secret."""


class ChatUnreadable(ValueError):
    """A verified request that is not one responder understands."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A verified request: a slash command's words ("ack 42"), or what a button stands for."""

    words: str
    user_id: str
    user_name: str
    reference: str  # unique per request (Slack's trigger id): a redelivery is stored once
    at: datetime  # when we received it (aware)


class ChatGate(Protocol):
    """Verifies and reads a chat tool's requests (the Slack integration's `SlackRequests`)."""

    def button(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest | None:
        """The button a person pressed; None for an interaction that is not one of ours.
        Raises ChatUnverified or ChatUnreadable."""
        ...

    def command(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """The slash command's request; raises ChatUnverified or ChatUnreadable."""
        ...

    def escape(self, text: str) -> str:
        """Untrusted text made safe to show in the tool's markup."""
        ...
