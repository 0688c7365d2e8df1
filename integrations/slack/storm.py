"""slack.storm: one summary message per channel and alert storm, rewritten in place.

Storm mode holds back the root messages of a storm's new incidents; this message tells
them instead: how many, how many are still open, which services or monitors, how many
pages went. The first run posts it (looking first for its own earlier post when an attempt
may have acted, as slack.post does), later runs continue that run and rewrite its message
(chat.update, naturally idempotent), the last one saying that the storm is over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from integrations.slack import blocks as bk
from integrations.slack.actions import _root, _SlackAction
from integrations.slack.lookup import earlier_message, run_metadata
from integrations.slack.messages import Message
from integrations.slack.params import StormParams
from responder.actions import (
    ActionContext,
    ActionError,
    ActionResult,
    StepParams,
    format_duration,
    parse_time,
    step_params,
)

_TOP = 5  # services or monitors shown


class StormAction(_SlackAction):
    name: ClassVar[str] = "slack.storm"
    params: ClassVar[type[StepParams]] = StormParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(StormParams, ctx)
        text, blocks = storm_message(params)
        if not params.update:
            return {
                "method": "chat.postMessage",
                "channel": params.channel,
                "text": text,
                "blocks": len(blocks),
                "metadata": run_metadata(ctx),
                "check_history_first": ctx.may_have_acted,
            }
        summary = _root(ctx.parent)
        request: dict[str, Any] = {
            "method": "chat.update",
            "channel": summary.channel if summary else params.channel,
            "ts": summary.ts if summary else None,
            "text": text,
            "blocks": len(blocks),
        }
        if summary is None:
            request["skip"] = NO_SUMMARY
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(StormParams, ctx)
        api = self._client()
        text, blocks = storm_message(params)
        if params.update:
            summary = _root(ctx.parent)
            if summary is None:  # the post failed for good: nothing to rewrite
                return ActionResult(response={}, skipped_reason=NO_SUMMARY)
            # chat.update rewrites the same content on a retry: nothing to check first.
            api.update_message(channel=summary.channel, ts=summary.ts, text=text, blocks=blocks)
            return ActionResult(
                response={"channel": summary.channel, "ts": summary.ts, "updated": True}
            )
        if ctx.may_have_acted:
            earlier = self._earlier(ctx, params)
            if earlier is not None:
                return ActionResult(response={**earlier, "adopted": True})
        posted = api.post_message(
            channel=params.channel, text=text, blocks=blocks, metadata=run_metadata(ctx)
        )
        # No refs: the incident's Slack reference is its own thread, which it does not have.
        return ActionResult(response={**posted, "adopted": False})

    def _earlier(self, ctx: ActionContext, params: StormParams) -> dict[str, str] | None:
        api = self._client()
        try:
            channel_id = api.channel_id(params.channel)
        except ActionError as exc:
            if exc.retryable:
                raise
            return None  # cannot look: a second summary is the lesser harm than none
        if channel_id is None:
            return None
        ts = earlier_message(api, channel_id, ctx).ts
        return {"channel": channel_id, "ts": ts} if ts is not None else None


NO_SUMMARY = "no storm summary to update"


def storm_message(params: StormParams) -> Message:
    """(fallback text, blocks). The channel and the labels are raw text: escaped here."""
    started = parse_time(params.started_at)
    ended = parse_time(params.ended_at)
    channel = bk.escape(params.channel)
    since = f"{started:%H:%M} UTC" if started else "—"
    figures = (
        f"{params.incidents} new {_plural(params.incidents, 'incident')},"
        f" {params.open} still open, {params.pages} {_plural(params.pages, 'page')} sent"
    )
    if ended is not None:
        lasted = format_duration((ended - started).total_seconds()) if started else "—"
        title = f"✅ Alert storm over in {channel}"
        intro = (
            f"The storm is over: calm for {bk.escape(params.quiet) or 'a while'}."
            f" It lasted {lasted} from {since}: {figures}."
            " New incidents get their own messages again."
        )
    else:
        title = f"🌩️ Alert storm in {channel}"
        intro = (
            f"More than {params.rate} new incidents a minute since {since}: they are counted"
            " here instead of one message each, and each service is paged once."
            f" This message is updated in place until the channel has been calm for"
            f" {bk.escape(params.quiet) or 'a while'}."
        )
    fields = [
        ("New incidents", str(params.incidents)),
        ("Still open", str(params.open)),
        ("Pages sent", str(params.pages)),
        ("Since", since),
    ]
    blocks = [bk.header(title), bk.section(intro), bk.fields_section(fields)]
    top = [(label, count) for label, count in params.top if label.strip()][:_TOP]
    if top:
        lines = "\n".join(f"• {bk.escape(label)}: {count}" for label, count in top)
        blocks.append(bk.section(f"*Most affected*\n{lines}"))
    text = bk.clip(f"{title}: {figures}", bk.FALLBACK_MAX)
    return text, bk.limit_blocks(blocks)


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"
