"""Markdown for Datadog incident cells and notebooks, with alert text made harmless.

Alert text is untrusted: a monitor title or message can carry links, images, headings or
`@handle` mentions that would notify people. Inline text is backslash-escaped and its `@`
broken with a zero-width space; a monitor message goes into a fenced block, shown verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from responder.actions import Link, parse_time, text_or_none

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|~!])")
_MENTION_BREAK = "@\u200b"
_MESSAGE_MAX = 3000


def escape(value: object, limit: int = 500) -> str:
    """One line of alert text, shown as the words it is."""
    raw = " ".join(str(value).split())
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", raw).replace("@", _MENTION_BREAK)


def fenced(value: str) -> str:
    """A block shown verbatim: a fence longer than any backtick run inside it."""
    body = value if len(value) <= _MESSAGE_MAX else value[: _MESSAGE_MAX - 1] + "…"
    body = body.replace("@", _MENTION_BREAK)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{body}\n{fence}"


def link(label: str, url: str) -> str | None:
    """`[label](url)` for an http(s) URL; None for anything else (javascript:, garbage)."""
    if not url.startswith(("https://", "http://")):
        return None
    # Characters that would end the link target early are percent-encoded.
    safe_url = quote(url, safe=":/?#&=%+,;~.-_!$'*@")
    return f"[{escape(label, 100)}]({safe_url})"


def link_line(links: Sequence[Link]) -> str:
    parts = [part for item in links if (part := link(item.title, item.url))]
    return " · ".join(parts)


def runs_list(runs: Sequence[Mapping[str, Any]], limit: int = 50) -> str:
    """What the playbook did so far, one line per run, oldest first."""
    if not runs:
        return "_No other actions recorded yet._"
    lines: list[str] = []
    for run in runs[-limit:]:
        when = parse_time(run.get("finished_at"))
        stamp = when.strftime("%H:%M:%S UTC") if when else "pending"
        # A code span shows its text verbatim; only a backtick could end it early.
        action = str(run.get("action") or "?").replace("`", "")[:80]
        state = escape(run.get("state") or "?", 40)
        line = f"- {stamp} · `{action}` {state}"
        playbook = text_or_none(run.get("playbook"))
        if playbook:
            line += f" ({escape(playbook, 80)})"
        transition = text_or_none(run.get("transition"))
        if transition:
            line += f" on {escape(transition, 40)}"
        error = text_or_none(run.get("error"))
        if error:
            line += f": {escape(error, 200)}"
        lines.append(line)
    if len(runs) > limit:
        lines.insert(0, f"_{len(runs) - limit} earlier runs not shown._")
    return "\n".join(lines)
