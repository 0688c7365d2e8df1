"""The messages of a run, from its context: the root post, a thread reply, the resolved pair.

Each is (fallback text, blocks); `blocks` turns the card into Block Kit and escapes it.
"""

from __future__ import annotations

from integrations.slack import blocks as bk
from integrations.slack.params import PostParams
from responder.actions import (
    ActionContext,
    acknowledged_line,
    format_duration,
    incident_links,
    members_line,
    no_data_words,
    repeats_line,
    resolved_as_stale,
    resolved_by_person,
    stale_summary,
)

Message = tuple[str, list[bk.Block]]


def root_message(ctx: ActionContext, params: PostParams) -> Message:
    # `text` was rendered by the runner with Slack escaping (markup = "slack") and `mention`
    # is the author's own Slack syntax: neither is escaped again here.
    note = " ".join(part for part in (params.mention, params.text) if part) or None
    card = _card(ctx)
    return bk.root_text(card, note=note), bk.root_blocks(card, note=note)


def reply_message(ctx: ActionContext, notice: str | None = None) -> Message:
    card = _card(ctx)
    line = notice or bk.reply_line(ctx.transition, card.status)
    return bk.clip(bk.escape(line), bk.FALLBACK_MAX), bk.reply_blocks(card, line)


def resolve_reply(ctx: ActionContext) -> Message:
    card = _card(ctx)
    line = _resolution(ctx)
    icon = "💤" if resolved_as_stale(ctx) else "✅"
    return bk.escape(line), bk.reply_blocks(card, f"{icon} {line}")


def resolved_root(ctx: ActionContext) -> Message:
    card = _card(ctx)
    summary = _resolution(ctx)
    stale = resolved_as_stale(ctx)
    return (
        bk.resolved_text(card, summary=summary, stale=stale),
        bk.resolved_blocks(card, summary=summary, stale=stale),
    )


def _card(ctx: ActionContext) -> bk.IncidentCard:
    alert, incident = ctx.alert, ctx.incident
    no_data = no_data_words(alert.transition)
    return bk.IncidentCard(
        title=alert.title or incident.title,
        monitor=alert.monitor_name or incident.title,
        monitor_id=ctx.monitor_id,
        priority=ctx.priority,
        scope=ctx.scope,
        service=alert.tag("service"),
        env=alert.tag("env"),
        transition=f"{alert.transition.value}: {no_data}" if no_data else alert.transition.value,
        status=alert.status_text,
        message=alert.message,
        event_link=alert.link,
        snapshot=alert.snapshot,
        links=tuple(
            (link.title, link.url) for link in incident_links(incident.refs, exclude="slack")
        ),
        repeats=" · ".join(
            line for line in (members_line(incident), repeats_line(incident)) if line
        )
        or None,
        incident_id=incident.id,
        acknowledged=acknowledged_line(ctx),
    )


def _resolution(ctx: ActionContext) -> str:
    """Why the incident ended: Datadog's recovery and how long it took, or our stale timer
    (then the run's alert is our own event, and its date says nothing about a recovery)."""
    if resolved_as_stale(ctx):
        return stale_summary(ctx)
    person = resolved_by_person(ctx)
    if person is not None:
        opened = ctx.incident.opened_at
        ended = ctx.incident.resolved_at or ctx.alert.date
        after = f" after {format_duration((ended - opened).total_seconds())}"
        return f"Resolved by {person}{after if ended >= opened else ''}"
    took = ctx.time_to_recover
    if took is None:
        return "Recovered"
    return f"Recovered after {format_duration(took.total_seconds())}"
