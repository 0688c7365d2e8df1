"""Block Kit messages for an incident: escaping of alert text and Slack's size limits live here.

Builders trim to fit and never raise: a long alert title must not cost us the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from responder.actions import (
    BUTTON_ACK,
    BUTTON_RESOLVE,
    BUTTON_SILENCE,
    BUTTON_SILENCE_FOR,
    no_data_words,
)
from responder.domain import Transition

Block = dict[str, Any]

# Block Kit limits (VENDORS.md, Slack section).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 2000
BLOCKS_MAX = 50
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTION_ID_MAX = 255
# Slack takes 40,000 characters of `text`, but it is what notifications and screen readers
# show: a few lines are enough, and a cap keeps us far from msg_too_long.
FALLBACK_MAX = 3000

DATADOG_APP = "https://app.datadoghq.com"
RESOLVED_PREFIX = "✅ Resolved: "
# Resolved by responder because nothing arrived: not a check mark, nobody saw it recover.
STALE_PREFIX = "💤 Resolved (stale): "
_ELLIPSIS = "…"
_MONITOR_ID = re.compile(r"^[0-9]{1,20}$")


@dataclass(frozen=True, slots=True)
class IncidentCard:
    """What an incident message shows, as raw (unescaped, untrusted) alert text."""

    title: str
    monitor: str
    monitor_id: str | None
    priority: str | None
    scope: str
    service: str | None
    env: str | None
    transition: str
    status: str | None
    message: str | None
    event_link: str | None
    snapshot: str | None
    # (title, url) of what other runs made for the incident: PagerDuty, Datadog incident, ...
    links: tuple[tuple[str, str], ...] = ()
    # Our own line about Datadog's reminders ("Repeated 7 times · last 03:40 UTC"), if any.
    repeats: str | None = None
    # Our incident id: what the buttons carry. None: no buttons (a message about no one
    # incident).
    incident_id: str | None = None
    # "Acknowledged by alice (slack) at 09:14 UTC" once a person has; raw text.
    acknowledged: str | None = None


def escape(text: str) -> str:
    """Slack's three control characters: stops `<!channel>` in an alert title from pinging."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Cut Slack-formatted text to `limit` characters without splitting an entity or a link."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(_ELLIPSIS)]
    # A trailing "&am" or "<https://..." would render as garbage or swallow what follows.
    for opener, closer in (("&", ";"), ("<", ">")):
        start = cut.rfind(opener)
        if start != -1 and closer not in cut[start:]:
            cut = cut[:start]
    return cut + _ELLIPSIS


def plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def header(text: str) -> Block:
    return {"type": "header", "text": plain_text(clip(text, HEADER_MAX) or "Alert")}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT_MAX)}}


def fields_section(fields: list[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", FIELD_MAX)}
            for label, value in fields[:FIELDS_MAX]
        ],
    }


def context(texts: list[str]) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip(text, CONTEXT_TEXT_MAX)}
            for text in texts[:CONTEXT_ELEMENTS_MAX]
        ],
    }


def link(url: str | None, label: str) -> str | None:
    """`<url|label>` for an http(s) URL; None for anything else or a URL too long to show."""
    if not url or not url.startswith(("https://", "http://")):
        return None
    # "|" and ">" end Slack's link syntax early; encode them rather than trust the sender.
    safe = escape(url.replace("|", "%7C").replace(" ", "%20"))
    text = f"<{safe}|{label}>"
    return text if len(text) <= CONTEXT_TEXT_MAX else None


def monitor_url(monitor_id: str | None) -> str | None:
    if monitor_id and _MONITOR_ID.match(monitor_id):
        return f"{DATADOG_APP}/monitors/{monitor_id}"
    return None


def card_fields(card: IncidentCard, *, transition: str | None = None) -> list[tuple[str, str]]:
    service_env = f"{_show(card.service)} / {_show(card.env)}"
    return [
        ("Priority", _show(card.priority)),
        ("Monitor", _show(card.monitor)),
        ("Scope", _show(card.scope, empty="(all)")),
        ("Service / Env", service_env),
        ("Transition", _show(transition or card.transition)),
        ("Status", _show(card.status)),
    ]


def card_links(card: IncidentCard) -> list[str]:
    candidates = [
        link(monitor_url(card.monitor_id), "Monitor"),
        link(card.event_link, "Event"),
        link(card.snapshot, "Graph snapshot"),
        *(link(url, escape(title)) for title, url in card.links),
    ]
    return [text for text in candidates if text]


def limit_blocks(blocks: list[Block]) -> list[Block]:
    return blocks[:BLOCKS_MAX]


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": plain_text(text[:BUTTON_TEXT_MAX]),
        "action_id": action_id[:ACTION_ID_MAX],
        "value": value[:BUTTON_VALUE_MAX],
    }
    if style:
        element["style"] = style
    return element


def incident_buttons(incident_id: str, *, acknowledged: bool) -> Block:
    """Acknowledge (until someone has), Resolve and Silence, each carrying our incident id;
    Slack sends the press to /slack/interactions."""
    buttons = [] if acknowledged else [button("Acknowledge", BUTTON_ACK, incident_id, "primary")]
    buttons.append(button("Resolve", BUTTON_RESOLVE, incident_id))
    buttons.append(button(f"Silence {BUTTON_SILENCE_FOR}", BUTTON_SILENCE, incident_id))
    return {"type": "actions", "block_id": "responder.incident", "elements": buttons}


def root_blocks(card: IncidentCard, *, note: str | None = None) -> list[Block]:
    """The incident's root message. `note` is playbook-authored Slack text (mention, extra line)."""
    blocks = [header(escape(card.title))]
    if note:
        blocks.append(section(note))
    blocks.append(fields_section(card_fields(card)))
    if card.repeats:
        blocks.append(context([escape(card.repeats)]))
    if card.message and card.message.strip():
        blocks.append(section(escape(card.message.strip())))
    links = card_links(card)
    if links:
        blocks.append(context([" · ".join(links)]))
    if card.acknowledged:
        blocks.append(context([escape(card.acknowledged)]))
    if card.incident_id:
        # Last, and kept within the block limit: the buttons are what people act with.
        return [
            *limit_blocks(blocks)[: BLOCKS_MAX - 1],
            incident_buttons(card.incident_id, acknowledged=card.acknowledged is not None),
        ]
    return limit_blocks(blocks)


def root_text(card: IncidentCard, *, note: str | None = None) -> str:
    details = ", ".join(
        part
        for part in (
            card.priority,
            f"service {card.service}" if card.service else None,
            f"env {card.env}" if card.env else None,
        )
        if part
    )
    line = escape(f"{card.title} ({details})" if details else card.title)
    return clip(f"{note} {line}" if note else line, FALLBACK_MAX)


def resolved_blocks(card: IncidentCard, *, summary: str, stale: bool = False) -> list[Block]:
    """The root message rewritten on resolution: same facts, a resolved header, the duration.
    A `stale` one says it was resolved for want of news, never that it recovered."""
    prefix, transition = (
        (STALE_PREFIX, "Resolved (stale)")
        if stale
        else (RESOLVED_PREFIX, Transition.RECOVERED.value)
    )
    blocks = [
        header(prefix + escape(card.monitor or card.title)),
        section(escape(summary)),
        fields_section(card_fields(card, transition=transition)),
    ]
    if card.repeats:
        blocks.append(context([escape(card.repeats)]))
    links = card_links(card)
    if links:
        blocks.append(context([" · ".join(links)]))
    return limit_blocks(blocks)


def resolved_text(card: IncidentCard, *, summary: str, stale: bool = False) -> str:
    prefix = STALE_PREFIX if stale else RESOLVED_PREFIX
    return clip(escape(f"{prefix}{card.monitor or card.title} ({summary})"), FALLBACK_MAX)


def reply_line(transition: Transition, status: str | None) -> str:
    """Plain words for a thread reply about a later transition (escape before sending)."""
    detail = f": {status}" if status else ""
    no_data = no_data_words(transition)
    if no_data is not None:
        # Neither a recovery (no alert data) nor a worse failure: the data itself is missing.
        return f"{transition.value}: {no_data}" + (f" ({status})" if status else "")
    if transition is Transition.RENOTIFY:
        return f"Renotify: still failing{detail}"
    if transition.is_repeat:
        return f"{transition.value}{detail}"
    if transition.is_recovery:
        return "Recovered"
    # Triggered or Warn on an incident that is already open: it got worse (or changed).
    return f"Escalated to {transition.value}{detail}"


def reply_blocks(card: IncidentCard, line: str) -> list[Block]:
    blocks = [section(escape(line))]
    event = link(card.event_link, "Event")
    if event:
        blocks.append(context([event]))
    return blocks


def _show(value: str | None, *, empty: str = "—") -> str:
    text = (value or "").strip()
    return escape(text) if text else empty
