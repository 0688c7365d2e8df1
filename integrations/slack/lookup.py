"""What a run writes into its messages, and a retry's search for them page by page.

Every message carries the run's id in its metadata. A retry whose earlier attempt may have
posted pages through the channel (roots, broadcast replies) or the thread (replies) until
it finds that message, or the end: the channel's history since the incident opened, or the
whole thread. Past the bound, or refused, it posts anyway and says so (`note`,
`lookup.complete`): a possible second message is less harm than a lost alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from integrations.slack.client import Page, SlackApi
from responder.actions import ActionContext, ActionError

METADATA_EVENT = "responder_action"
# Slack recommends 100-200 a page; at most 2,000 messages looked at.
PAGE_SIZE = 200
MAX_PAGES = 10
# Our clock (the incident's opening) against Slack's (a message's ts): a generous margin,
# since it only costs a page more.
CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Lookup:
    ts: str | None  # of our earlier message
    pages: int
    examined: int
    complete: bool  # True: `ts` is ours, or there is provably none
    note: str | None = None  # why it is not complete

    def said(self) -> dict[str, Any]:
        """What the run's result says about this search."""
        said: dict[str, Any] = {
            "lookup": {"pages": self.pages, "examined": self.examined, "complete": self.complete}
        }
        if self.note:
            said["note"] = self.note
        return said


def run_metadata(ctx: ActionContext) -> dict[str, Any]:
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {"run_id": ctx.run_id, "incident_id": ctx.incident.id},
    }


def earlier_message(api: SlackApi, channel_id: str, ctx: ActionContext) -> Lookup:
    """Our channel message (a root, or a broadcast reply) from an earlier attempt."""
    since = (ctx.incident.opened_at - CLOCK_MARGIN).timestamp()
    oldest = f"{max(since, 0):.6f}"
    return _search(
        "conversations.history",
        lambda cursor: api.history(channel_id, oldest=oldest, cursor=cursor, limit=PAGE_SIZE),
        ctx.run_id,
    )


def earlier_reply(api: SlackApi, channel_id: str, thread_ts: str, ctx: ActionContext) -> Lookup:
    """Our reply in the thread under `thread_ts` from an earlier attempt."""
    return _search(
        "conversations.replies",
        lambda cursor: api.replies(channel_id, thread_ts, cursor=cursor, limit=PAGE_SIZE),
        ctx.run_id,
    )


def _search(method: str, read: Callable[[str | None], Page], run_id: str) -> Lookup:
    pages = examined = 0
    cursor: str | None = None
    try:
        while pages < MAX_PAGES:
            messages, cursor = read(cursor)
            pages += 1
            examined += len(messages)
            ts = _find_run(messages, run_id)
            if ts is not None or cursor is None:
                return Lookup(ts, pages, examined, complete=True)
    except ActionError as exc:
        if exc.retryable:
            raise  # busy or down: retry later rather than post blind
        # A permanent refusal (say missing_scope: reading needs channels:history) would fail
        # this run on every retry and lose the message; a possible duplicate is less harm.
        reason = exc.response.get("error", "an error")
        note = f"not checked for an earlier post: {method} answered {reason}"
        return Lookup(None, pages, examined, complete=False, note=note)
    note = (
        f"looked through {examined} messages in {pages} pages of {method} without finding"
        " ours or reaching the end; posted anew, which may be a second message"
    )
    return Lookup(None, pages, examined, complete=False, note=note)


def _find_run(messages: list[dict[str, Any]], run_id: str) -> str | None:
    """The ts of a message we posted for `run_id`, found through its metadata."""
    for message in messages:
        metadata = message.get("metadata")
        if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT:
            continue
        payload = metadata.get("event_payload")
        ts = message.get("ts")
        if isinstance(payload, Mapping) and payload.get("run_id") == run_id and isinstance(ts, str):
            return ts
    return None
