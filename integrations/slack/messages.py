"""The messages of a run, from its context: the root post, a thread reply, the resolved pair.

Each is (fallback text, blocks); `blocks` turns the card into Block Kit and escapes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.slack import blocks as bk
from integrations.slack.params import PostParams
from responder.actions import ActionContext, format_duration, incident_links, parse_time

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
    line = _recovered_after(ctx)
    return bk.escape(line), bk.reply_blocks(card, f"✅ {line}")


def resolved_root(ctx: ActionContext) -> Message:
    card = _card(ctx)
    summary = _recovered_after(ctx)
    return bk.resolved_text(card, summary=summary), bk.resolved_blocks(card, summary=summary)


def _card(ctx: ActionContext) -> bk.IncidentCard:
    alert, incident = ctx.alert, ctx.incident
    raw_tags = alert.get("tags")
    tags: Mapping[str, Any] = raw_tags if isinstance(raw_tags, Mapping) else {}
    return bk.IncidentCard(
        title=_text(alert.get("title")) or incident.title,
        monitor=_text(alert.get("monitor")) or incident.title,
        monitor_id=_text(alert.get("monitor_id")) or incident.monitor_id,
        priority=_text(alert.get("priority")) or incident.priority,
        scope=_text(alert.get("scope")) or incident.scope,
        service=_text(tags.get("service")),
        env=_text(tags.get("env")),
        transition=_text(alert.get("transition")) or ctx.transition.value,
        status=_text(alert.get("status")),
        message=_text(alert.get("message")),
        event_link=_text(alert.get("link")),
        snapshot=_text(alert.get("snapshot")),
        links=tuple(
            (link.title, link.url) for link in incident_links(incident.refs, exclude="slack")
        ),
    )


def _recovered_after(ctx: ActionContext) -> str:
    opened = parse_time(ctx.incident.opened_at)
    # Datadog's own time for the recovery first; our resolved_at is when we heard of it.
    ended = parse_time(ctx.alert.get("date")) or parse_time(ctx.incident.resolved_at)
    if opened is None or ended is None or ended < opened:
        return "Recovered"
    return f"Recovered after {format_duration((ended - opened).total_seconds())}"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
