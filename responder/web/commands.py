"""What people ask responder from chat (`/responder ...` and the incident's buttons), and the
short text answered to them. Acknowledge and resolve are stored as answers for the pipeline;
nothing here calls a vendor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from responder.actions import BUTTON_SILENCE_FOR, ChatRequest
from responder.domain import Answer, Verb, actor_label, parse_duration
from responder.pipeline.answers import (
    AlreadyAcknowledged,
    AnswerDesk,
    Refused,
    Silencer,
    UnknownIncident,
)
from responder.records import IncidentRecord
from responder.store import history, incidents
from responder.store.db import reader
from responder.web.ids import row_id

VIA = "slack"
HISTORY_LIMIT = 10
_VERBS = {"ack": Verb.ACKNOWLEDGE, "acknowledge": Verb.ACKNOWLEDGE, "resolve": Verb.RESOLVE}

HELP = "\n".join(
    (
        "*/responder* commands:",
        "`ack ID` acknowledge incident ID",
        "`resolve ID` resolve incident ID (PagerDuty, Slack and Datadog follow)",
        f"`silence ID [DURATION]` silence its monitor and scope (default {BUTTON_SILENCE_FOR};"
        " e.g. 30m, 2h, 1d)",
        "`incident ID` status, title, when it opened, who acknowledged it",
        f"`history SERVICE` the last {HISTORY_LIMIT} incidents of a service",
        "`help` this text",
    )
)

CHAT_SILENCE_MAX = timedelta(days=7)


class _Refusal(Exception):
    """A request that cannot be done as asked; the message is the reply."""


@dataclass(frozen=True, slots=True)
class Commands:
    desk: AnswerDesk
    engine: sa.Engine
    silencer: Silencer | None
    escape: Callable[[str], str]  # the chat tool's markup escaping, for untrusted text

    def run(self, request: ChatRequest) -> str:
        """The reply to `request`. Blocking (database): run it in a thread."""
        name, _, rest = request.words.strip().partition(" ")
        name, args = name.lower(), rest.split()
        try:
            if name in _VERBS:
                return self._answer(_VERBS[name], _incident_id(args), request)
            if name == "silence":
                return self._silence(_incident_id(args), args[1:], request)
            if name == "incident":
                return self._incident(_incident_id(args))
            if name == "history":
                return self._history(" ".join(args))
        except _Refusal as exc:
            return str(exc)
        if name in ("", "help"):
            return HELP
        return f"I don't know `{self.escape(name[:40])}`.\n{HELP}"

    def _answer(self, verb: Verb, incident_id: int, request: ChatRequest) -> str:
        answer = Answer(
            verb,
            incident_id,
            actor=request.user_name,
            via=VIA,
            reference=request.reference,
            at=request.at,
            note=f"Slack user {request.user_id}",
        )
        try:
            accepted = self.desk.submit(answer)
        except UnknownIncident:
            raise _Refusal(f"No incident {incident_id}.") from None
        except Refused as exc:
            raise _Refusal(f"Nothing done: {self.escape(str(exc))}.") from None
        except AlreadyAcknowledged as exc:
            who = self.escape(exc.by or "someone")
            raise _Refusal(f"Incident {incident_id} is acknowledged already, by {who}.") from None
        word = "Acknowledgement" if verb is Verb.ACKNOWLEDGE else "Resolution"
        if not accepted.new:
            return f"{word} of incident {incident_id} was recorded already."
        if accepted.status == "resolved":
            return f"Incident {incident_id} is resolved already; your {word.lower()} is recorded."
        return (
            f"{word} of incident {incident_id} recorded (event {accepted.event_id}); "
            "responder applies it to PagerDuty, Slack and Datadog in the background."
        )

    def _silence(self, incident_id: int, args: list[str], request: ChatRequest) -> str:
        if self.silencer is None:
            raise _Refusal("Silences are not available on this responder.")
        raw = args[0] if args else BUTTON_SILENCE_FOR
        try:
            duration = parse_duration(raw, "the silence")
        except ValueError as exc:
            raise _Refusal(self.escape(str(exc))) from None
        if duration > CHAT_SILENCE_MAX:
            # Anyone in the channel can do this: a longer silence belongs to the API or
            # the CLI, where it is a deliberate act with a reason.
            raise _Refusal("A silence from Slack lasts at most 7d; use the API or CLI for longer.")
        author = actor_label(request.user_name, VIA)
        try:
            silence_id = self.silencer.silence_incident(
                incident_id,
                author=author,
                duration=duration,
                reason=f"from Slack by {author} (user {request.user_id})",
            )
        except UnknownIncident:
            raise _Refusal(f"No incident {incident_id}.") from None
        return (
            f"Incident {incident_id}'s monitor and scope are silenced for "
            f"{_duration(duration)} (silence {silence_id})."
        )

    def _incident(self, incident_id: int) -> str:
        with reader(self.engine).connect() as conn:
            found = incidents.by_ids(conn, ids=[incident_id]).get(incident_id)
        if found is None:
            raise _Refusal(f"No incident {incident_id}.")
        return self._summary(found)

    def _summary(self, incident: IncidentRecord) -> str:
        lines = [
            f"*Incident {incident.id}: {self.escape(incident.title)}*",
            f"Status: {incident.status} · opened {_when(incident.opened_at)}",
        ]
        if incident.acknowledged_at is not None or incident.acknowledged_by:
            who = self.escape(incident.acknowledged_by or "someone")
            at = f" at {_when(incident.acknowledged_at)}" if incident.acknowledged_at else ""
            lines.append(f"Acknowledged by {who}{at}")
        if incident.resolved_at is not None:
            lines.append(f"Resolved {_when(incident.resolved_at)}")
        return "\n".join(lines)

    def _history(self, service: str) -> str:
        if not service or "\x00" in service:
            raise _Refusal("Usage: `history SERVICE`, e.g. `history payments`.")
        flt = history.IncidentFilter(service=service[:200], limit=HISTORY_LIMIT)
        with Session(reader(self.engine)) as session:
            items, _ = history.list_incidents(session, flt)
        shown = self.escape(service[:200])
        if not items:
            return f"No incidents of service {shown}."
        lines = [f"*Last {len(items)} incidents of {shown}:*"]
        for item in items:
            opened = datetime.fromisoformat(str(item["opened_at"]))
            title = self.escape(str(item["title"]))
            lines.append(f"{item['id']} · {item['status']} · {_when(opened)} · {title}")
        return "\n".join(lines)


def _incident_id(args: list[str]) -> int:
    found = row_id(args[0].removeprefix("#") if args else "")
    if found is None:
        raise _Refusal("Give the incident's number, e.g. `ack 42`.")
    return found


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _duration(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
