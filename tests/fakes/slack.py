"""A local fake of the Slack Web API (chat, conversations, auth.test), as strict as Slack.

Runs a ThreadingHTTPServer on 127.0.0.1; tests inspect what was posted and inject faults
(tests.fakes.server: refusals, delays, garbled answers, down and up), by Web API method.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.server import Answer, LocalServer, Request

Params = dict[str, Any]

# Slack's published OpenAPI spec is stale (2020) and leaves these out; they come from Slack's
# reference pages. chat.postMessage: `text` over 40,000 characters is msg_too_long.
TEXT_MAX = 40_000
# Block Kit reference, "Blocks" (api.slack.com/reference/block-kit/blocks): the block types a
# message takes, at most 50 blocks, a block_id of at most 255 characters, and per type:
BLOCK_TYPES = frozenset(
    {"header", "section", "context", "actions", "divider", "image", "rich_text", "markdown"}
)
BLOCKS_MAX = 50
_BURST = 1.5  # posts a channel's bucket holds (see _check_rate)
BLOCK_ID_MAX = 255
HEADER_TEXT_MAX = 150  # header: plain_text only
SECTION_TEXT_MAX = 3000  # section: text, or fields, or both
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
# Block Kit reference, "Button element": text (plain_text) at most 75 characters, action_id
# at most 255 and unique among a message's interactive elements, value at most 2000, style
# "primary" or "danger" when present.
BUTTON_TEXT_MAX = 75
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2000
BUTTON_STYLES = frozenset({"primary", "danger"})
# conversations.history and .replies: "maximum of 999" and "default 1000, maximum 1000"
# items a page; Slack serves at most that many, whatever `limit` asks for.
HISTORY_LIMIT_MAX = 999
REPLIES_LIMIT_MAX = 1000
# Slack's error for a refused request, by the HTTP status other vendors would answer.
_REFUSALS = {400: "invalid_arguments", 401: "invalid_auth", 403: "missing_scope"}
BOT = {"user": "U0BOT", "bot_id": "B0FAKE", "app_id": "A0FAKE"}
AUTH_TEST = {
    "url": "https://fake.slack.com/",
    "team": "Fake",
    "user": "responder",
    "team_id": "T0FAKE",
    "user_id": "U0BOT",
    "bot_id": "B0FAKE",
}


class SlackError(Exception):
    """A Slack error answer: HTTP `status` (200 for most) with {"ok": false, "error": error}."""

    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.error, self.status, self.headers = error, status, headers or {}


@dataclass
class FakeMessage:
    """One stored message; `edits` keeps the text/blocks each chat.update replaced."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack(LocalServer):
    """`with FakeSlack(token=..., channels={"#name": "C0ID"}) as fake: fake.base_url ...`"""

    content_type = "application/json; charset=utf-8"

    def __init__(self, token: str = "xoxb-test", channels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.channels = {name.lstrip("#"): cid for name, cid in (channels or {}).items()}
        self._lock = threading.Lock()
        self._messages: list[FakeMessage] = []
        self._calls: list[tuple[str, Params]] = []
        self._buckets: dict[str, tuple[float, float]] = {}  # channel: (posts left, when)
        self._rate_limited = False
        self.rate_limited = 0  # chat.postMessage calls answered 429 by the per-channel limit
        # Message ts as Slack gives them: the time of posting (microseconds), each message
        # later than the one before. Look-ups read history from the incident's opening on.
        self._clock = 0
        self._methods: dict[str, Callable[[Params], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.list": self._list,
            "conversations.replies": self._replies,
        }

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- what tests look at and control ----------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, Params]]:
        """Every request as (method, params without the token), including rejected ones."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Params]:
        return [params for name, params in self.calls if name == method]

    def messages(self, channel_id: str) -> list[FakeMessage]:
        with self._lock:
            return [m for m in self._messages if m.channel == channel_id]

    def root_messages(self, channel_id: str | None = None) -> list[FakeMessage]:
        with self._lock:
            return [
                m for m in self._messages if m.thread_ts is None and channel_id in (None, m.channel)
            ]

    def replies(self, channel_id: str, ts: str) -> list[FakeMessage]:
        with self._lock:
            return [m for m in self._messages if m.channel == channel_id and m.thread_ts == ts]

    def fail_next(
        self,
        method: str,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: str | None = "3",
        count: int = 1,
    ) -> None:
        """The next `count` calls of `method` answer `status` {"ok": false, "error": error}."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.answer_next(method, (status, headers, {"ok": False, "error": error}), count)

    def refusal(self, route: str, status: int, message: str | None) -> Answer:
        # Slack refuses a request it will not carry out with HTTP 200 and {"ok": false};
        # only its rate limit (429) and its own trouble (5xx) change the status.
        if status == 429:
            return 429, {}, {"ok": False, "error": message or "ratelimited"}
        if status >= 500:
            return status, {}, {"ok": False, "error": message or "internal_error"}
        return (
            200,
            {},
            {"ok": False, "error": message or _REFUSALS.get(status, "invalid_arguments")},
        )

    def rate_limit_channels(self, enabled: bool = True) -> None:
        """More than one chat.postMessage per second per channel gets HTTP 429, Retry-After 1."""
        with self._lock:
            self._rate_limited = enabled
            self._buckets.clear()

    # -- request handling ------------------------------------------------------------------

    def answer(self, request: Request) -> Answer:
        # Slack takes GET for its read methods too; the SDK always POSTs.
        url = urlsplit(request.target)
        return self.handle(
            url.path.removeprefix("/api/"),
            request.headers.get("Content-Type", ""),
            request.body,
            url.query,
            request.headers.get("Authorization", ""),
        )

    def handle(self, method: str, content_type: str, body: bytes, query: str, auth: str) -> Answer:
        token: str | None = None
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        try:
            params, form_token = _parse_body(content_type, body, query)
        except SlackError as exc:
            params, form_token = {}, None
            failure: SlackError | None = exc
        else:
            failure = None
        with self._lock:
            self._calls.append((method, params))
        return self.respond(
            method, lambda: self._dispatch(method, params, token or form_token, failure)
        )

    def _dispatch(
        self, method: str, params: Params, token: str | None, failure: SlackError | None
    ) -> Answer:
        handler = self._methods.get(method)
        try:
            if handler is None:
                raise SlackError("unknown_method")
            if not token:
                raise SlackError("not_authed")
            if token != self.token:
                raise SlackError("invalid_auth")
            if failure is not None:
                raise failure
            with self._lock:
                return 200, {}, {"ok": True, **handler(params)}
        except SlackError as exc:
            return exc.status, exc.headers, {"ok": False, "error": exc.error}

    # -- Web API methods (called with the lock held) ---------------------------------------

    def _auth_test(self, params: Params) -> dict[str, Any]:
        return dict(AUTH_TEST)

    def _post_message(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), names_ok=True)
        text, blocks = _content(params)
        metadata = _metadata(params.get("metadata"))
        thread_ts = _str_or_none(params.get("thread_ts"))
        # Slack documents no thread_not_found for chat.postMessage and has been seen to post a
        # bad thread_ts at top level; we are strict so a lost root ts fails loudly in tests.
        if thread_ts is not None and self._find(channel, thread_ts, roots_only=True) is None:
            raise SlackError("thread_not_found")
        self._check_rate(channel)
        self._clock = max(self._clock + 100, time.time_ns() // 1000)
        message = FakeMessage(
            channel=channel,
            ts=f"{self._clock // 1_000_000}.{self._clock % 1_000_000:06d}",
            text=text,
            blocks=blocks,
            metadata=metadata,
            thread_ts=thread_ts,
            reply_broadcast=thread_ts is not None and _truthy(params.get("reply_broadcast")),
        )
        self._messages.append(message)
        return {"channel": channel, "ts": message.ts, "message": self._render(message, True)}

    def _update(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), names_ok=False)
        message = self._find(channel, _str_or_none(params.get("ts")) or "", roots_only=False)
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = _content(params)
        message.edits.append({"text": message.text, "blocks": message.blocks})
        message.text, message.blocks = text, blocks
        return {
            "channel": channel,
            "ts": message.ts,
            "text": text or "",
            "message": self._render(message, False),
        }

    def _history(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), names_ok=False)
        limit = _limit(params.get("limit"), default=100, most=HISTORY_LIMIT_MAX)
        oldest = _ts_bound(params.get("oldest"), "invalid_ts_oldest", default=0.0)
        latest = _ts_bound(params.get("latest"), "invalid_ts_latest", default=float("inf"))
        # Channel history holds roots and broadcast replies, newest first, in the time range.
        visible = [
            m
            for m in reversed(self._messages)
            if m.channel == channel
            and (m.thread_ts is None or m.reply_broadcast)
            and oldest < float(m.ts) < latest
        ]
        page, cursor = _paged(visible, params.get("cursor"), limit)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "messages": [self._render(m, with_metadata) for m in page],
            "has_more": cursor is not None,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": cursor or ""},
        }

    def _replies(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), names_ok=False)
        # `ts` may name the thread's parent or any message in it.
        named = self._find(channel, _str_or_none(params.get("ts")) or "", roots_only=False)
        parent = named and self._find(channel, named.thread_ts or named.ts, roots_only=True)
        if parent is None:
            raise SlackError("thread_not_found")
        limit = _limit(params.get("limit"), default=1000, most=REPLIES_LIMIT_MAX)
        # The message itself, then its replies, oldest first.
        thread = [parent, *(m for m in self._messages if m.thread_ts == parent.ts)]
        page, cursor = _paged(thread, params.get("cursor"), limit)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "messages": [self._render(m, with_metadata) for m in page],
            "has_more": cursor is not None,
            "response_metadata": {"next_cursor": cursor or ""},
        }

    def _list(self, params: Params) -> dict[str, Any]:
        # Paged like Slack: the cursor is an opaque offset; `limit` caps the page.
        items = sorted(self.channels.items())
        start = int(_str_or_none(params.get("cursor")) or 0)
        limit = min(max(_int(params.get("limit"), 100), 1), 1000)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "channels": [
                {"id": cid, "name": name, "is_channel": True, "is_archived": False}
                for name, cid in page
            ],
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _channel(self, value: object, *, names_ok: bool) -> str:
        channel = _str_or_none(value) or ""
        if channel in self.channels.values():
            return channel
        # chat.postMessage takes a name; chat.update and conversations.* want the ID.
        if names_ok and channel.lstrip("#") in self.channels:
            return self.channels[channel.lstrip("#")]
        raise SlackError("channel_not_found")

    def _find(self, channel: str, ts: str, *, roots_only: bool) -> FakeMessage | None:
        for message in self._messages:
            if message.channel == channel and message.ts == ts:
                return None if roots_only and message.thread_ts else message
        return None

    def _check_rate(self, channel: str) -> None:
        if not self._rate_limited:
            return
        # A bucket per channel, refilled at one post a second: Slack allows one a second
        # with "short bursts" above it. Half a post of burst is what this fake grants: two
        # posts back to back are refused, a sustained rate above one a second is refused,
        # and a sender pacing itself at 1.1 s is not refused for the jitter of its requests'
        # arrival on a busy machine.
        now = time.monotonic()
        level, since = self._buckets.get(channel, (_BURST, now))
        level = min(_BURST, level + (now - since))
        if level < 1.0:
            self.rate_limited += 1
            self._buckets[channel] = (level, now)
            raise SlackError("ratelimited", 429, {"Retry-After": "1"})
        self._buckets[channel] = (level - 1.0, now)

    def _render(self, message: FakeMessage, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            **BOT,
            "text": message.text or "",
            "ts": message.ts,
        }
        if message.blocks:
            out["blocks"] = message.blocks
        if message.thread_ts:
            out["thread_ts"] = message.thread_ts
            if message.reply_broadcast:
                out["subtype"] = "thread_broadcast"
        else:
            count = sum(1 for m in self._messages if m.thread_ts == message.ts)
            if count:
                out.update(thread_ts=message.ts, reply_count=count)
        if message.edits:
            out["edited"] = {"user": BOT["user"], "ts": message.ts}
        if with_metadata and message.metadata:
            out["metadata"] = message.metadata
        return out


def _parse_body(content_type: str, body: bytes, query: str) -> tuple[Params, str | None]:
    params: Params = dict(parse_qsl(query))
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(parsed, dict):
            raise SlackError("json_not_object")
        params.update(parsed)
        # Slack reads the token of a JSON request from the Authorization header only.
        params.pop("token", None)
        return params, None
    if body and not content_type.startswith("application/x-www-form-urlencoded"):
        raise SlackError("invalid_form_data")  # multipart is real Slack, but not needed here
    params.update(parse_qsl(body.decode()))
    return params, params.pop("token", None)


def _content(params: Params) -> tuple[str | None, list[dict[str, Any]] | None]:
    text = _str_or_none(params.get("text"))
    blocks = params.get("blocks")
    if isinstance(blocks, str):  # form-encoded bodies carry blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if not (text and text.strip()) and not blocks:
        raise SlackError("no_text")
    if text is not None and len(text) > TEXT_MAX:
        raise SlackError("msg_too_long")
    if blocks:
        _check_blocks(blocks)
    return text, blocks or None


def _check_blocks(blocks: list[Any]) -> None:
    """Block Kit limits as Slack enforces them; any breach is the one error invalid_blocks."""
    ok = len(blocks) <= BLOCKS_MAX and all(isinstance(b, dict) and _block_ok(b) for b in blocks)
    action_ids = [
        element.get("action_id")
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "actions"
        for element in block.get("elements") or []
        if isinstance(element, dict) and "action_id" in element
    ]
    if not ok or len(action_ids) != len(set(action_ids)):
        raise SlackError("invalid_blocks")


def _block_ok(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    if kind not in BLOCK_TYPES or len(str(block.get("block_id", ""))) > BLOCK_ID_MAX:
        return False
    if kind == "header":
        return _text_ok(block.get("text"), HEADER_TEXT_MAX, kinds=("plain_text",))
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        fields_ok = fields is None or (
            isinstance(fields, list)
            and len(fields) <= SECTION_FIELDS_MAX
            and all(_text_ok(f, SECTION_FIELD_TEXT_MAX) for f in fields)
        )
        return (
            (text is not None or bool(fields))
            and (text is None or _text_ok(text, SECTION_TEXT_MAX))
            and fields_ok
        )
    if kind in ("context", "actions"):
        elements = block.get("elements")
        sized = isinstance(elements, list) and 1 <= len(elements) <= (
            CONTEXT_ELEMENTS_MAX if kind == "context" else ACTIONS_ELEMENTS_MAX
        )
        if kind == "context" or not sized:
            return sized
        assert isinstance(elements, list)
        return all(
            isinstance(e, dict) and e.get("type") == "button" and _button_ok(e) for e in elements
        )
    return True


def _button_ok(element: dict[str, Any]) -> bool:
    # The only interactive element responder sends; others would be refused here until added.
    action_id, value, style = element.get("action_id"), element.get("value"), element.get("style")
    return (
        _text_ok(element.get("text"), BUTTON_TEXT_MAX, kinds=("plain_text",))
        and (
            action_id is None
            or (isinstance(action_id, str) and 1 <= len(action_id) <= ACTION_ID_MAX)
        )
        and (value is None or (isinstance(value, str) and 1 <= len(value) <= BUTTON_VALUE_MAX))
        and (style is None or style in BUTTON_STYLES)
    )


def _text_ok(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    if not isinstance(obj, dict):
        return False
    text = obj.get("text")
    return obj.get("type") in kinds and isinstance(text, str) and 1 <= len(text) <= limit


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    ok = (
        isinstance(value, dict)
        and isinstance(value.get("event_type"), str)
        and isinstance(value.get("event_payload"), dict)
    )
    if not ok:
        raise SlackError("invalid_metadata_format")
    return dict(value)


def _limit(value: Any, *, default: int, most: int) -> int:
    return min(max(_int(value, default), 1), most)


def _ts_bound(value: Any, error: str, *, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SlackError(error) from None


def _paged(
    items: list[FakeMessage], cursor: Any, limit: int
) -> tuple[list[FakeMessage], str | None]:
    """One page from `cursor` on, and the next page's cursor: opaque, as Slack's are."""
    start = 0
    if cursor not in (None, ""):
        start = _cursor_offset(cursor)
        if start > len(items):
            raise SlackError("invalid_cursor")
    end = start + limit
    return items[start:end], (_cursor(end) if end < len(items) else None)


def _cursor(offset: int) -> str:
    return base64.b64encode(f"next:{offset}".encode()).decode()


def _cursor_offset(cursor: Any) -> int:
    try:
        text = base64.b64decode(str(cursor), validate=True).decode()
    except ValueError:
        raise SlackError("invalid_cursor") from None
    kind, _, offset = text.partition(":")
    if kind != "next" or not offset.isdigit():
        raise SlackError("invalid_cursor")
    return int(offset)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
