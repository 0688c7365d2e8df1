"""The Slack Web API calls responder makes, over one retry-free WebClient.

Translates every slack_sdk outcome into plain dicts or `ActionError`; SDK types stop here.
"""

from __future__ import annotations

import functools
import http.client
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from responder.actions import ActionError, retry_seconds

# Slack errors that say "try again later" even when the HTTP status is 200.
_TRANSIENT_ERRORS = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error"})
# Conversation IDs are upper-case; channel names never are, so the two cannot be confused.
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


# Messages of one page, and the cursor of the next page (None: this was the last).
Page = tuple[list[dict[str, Any]], str | None]


def build_web_client(token: str, base_url: str, timeout: float) -> WebClient:
    """A WebClient that makes exactly one HTTP attempt per call.

    `retry_handlers=[]` matters: the SDK's default connection-error handler and the optional
    rate-limit handler sleep inside the call, while our runner owns backoff and Retry-After.
    """
    return WebClient(
        token=token,
        base_url=base_url,
        # urllib takes fractional seconds; the SDK's annotation says int only out of habit.
        timeout=timeout,  # type: ignore[arg-type]
        retry_handlers=[],
        logger=_masked_logger(token),
    )


class _Masked(logging.Filter):
    """Takes the token out of a record: at DEBUG the SDK logs every answer body as received,
    and an answer may quote the token back. These records bypass our structured log's mask."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg, record.args = message.replace(self._secret, "***"), None
        return True


def _masked_logger(token: str) -> logging.Logger:
    # A logger of this client's own, outside the registry (which would keep one per token
    # for the process's life), handing its records on to the SDK's logger as usual.
    logger = logging.Logger("slack_sdk.web.base_client")
    logger.parent = logging.getLogger("slack_sdk.web")
    logger.addFilter(_Masked(token))
    return logger


def is_channel_id(channel: str) -> bool:
    return bool(_CHANNEL_ID.match(channel))


class SlackApi:
    """chat.postMessage, chat.update, conversations.history/replies/list and auth.test, one
    attempt each."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._token = client.token or ""
        # "#name" -> ID, learned from postMessage answers or looked up with conversations.list
        # (channels:read): conversations.history takes IDs only, and after a restart an
        # uncertain post must still be able to look for itself.
        self._channel_ids: dict[str, str] = {}
        self._workspace_url: str | None = None
        self._asked_workspace = False
        self._lock = threading.Lock()

    def channel_id(self, channel: str) -> str | None:
        """The ID of a channel given by ID or name; None when Slack does not know the name."""
        if is_channel_id(channel):
            return channel
        with self._lock:
            known = self._channel_ids.get(_name_key(channel))
        if known is not None:
            return known
        found = self._list_channels()
        with self._lock:
            self._channel_ids.update(found)
        return found.get(_name_key(channel))

    def _list_channels(self, max_pages: int = 10) -> dict[str, str]:
        names: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(max_pages):  # bounded: a huge workspace must not stall a worker
            page = self._call(
                "conversations.list",
                functools.partial(
                    self._client.conversations_list,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                ),
            )
            for item in page.get("channels") or []:
                if isinstance(item, dict) and item.get("name") and item.get("id"):
                    names[_name_key(str(item["name"]))] = str(item["id"])
            meta = page.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
        return names

    def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: Mapping[str, Any],
        thread_ts: str | None = None,
        reply_broadcast: bool | None = None,
    ) -> dict[str, str]:
        response = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata=dict(metadata),
                thread_ts=thread_ts,
                reply_broadcast=reply_broadcast,
                # Alert links must not unfurl into large previews of Datadog pages.
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        posted = {"channel": str(response.get("channel", "")), "ts": str(response.get("ts", ""))}
        if posted["channel"] and not is_channel_id(channel):
            with self._lock:
                self._channel_ids[_name_key(channel)] = posted["channel"]
        return posted

    def update_message(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> dict[str, str]:
        response = self._call(
            "chat.update",
            lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
        )
        return {"channel": str(response.get("channel", channel)), "ts": str(response.get("ts", ts))}

    def history(self, channel_id: str, *, oldest: str, cursor: str | None, limit: int) -> Page:
        """One page of channel messages (roots and broadcast replies) newer than `oldest`,
        newest first, metadata included; and the cursor of the next page, if any."""
        return self._page(
            "conversations.history",
            functools.partial(
                self._client.conversations_history,
                channel=channel_id,
                oldest=oldest,
                include_all_metadata=True,
                limit=limit,
                cursor=cursor,
            ),
        )

    def replies(self, channel_id: str, ts: str, *, cursor: str | None, limit: int) -> Page:
        """One page of the thread under `ts` (that message first), oldest first, metadata
        included; and the cursor of the next page, if any."""
        return self._page(
            "conversations.replies",
            functools.partial(
                self._client.conversations_replies,
                channel=channel_id,
                ts=ts,
                include_all_metadata=True,
                limit=limit,
                cursor=cursor,
            ),
        )

    def _page(self, method: str, send: Callable[[], SlackResponse]) -> Page:
        response = self._call(method, send)
        messages = response.get("messages")
        found = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        meta = response.get("response_metadata")
        cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        return found, (cursor if isinstance(cursor, str) and cursor else None)

    def permalink(self, channel_id: str, ts: str) -> str | None:
        """A link to a message, built from the workspace URL (auth.test, asked once)."""
        with self._lock:
            asked, self._asked_workspace = self._asked_workspace, True
        if not asked:
            try:
                url = self.auth_test().get("url")
            except ActionError:
                url = None  # a link is a convenience; the message itself went out
            if isinstance(url, str) and url.startswith("https://"):
                with self._lock:
                    self._workspace_url = url if url.endswith("/") else url + "/"
        with self._lock:
            base = self._workspace_url
        if base is None or not is_channel_id(channel_id):
            return None
        return f"{base}archives/{channel_id}/p{ts.replace('.', '')}"

    def auth_test(self) -> dict[str, Any]:
        return self._call("auth.test", self._client.auth_test)

    def _call(self, method: str, send: Callable[[], SlackResponse]) -> dict[str, Any]:
        # The failure is raised outside the `except` blocks so it carries no __context__:
        # the SDK's exception holds the request headers, bearer token included.
        failure: ActionError
        try:
            response = send()
        except SlackApiError as exc:
            failure = self._api_error(method, exc)
        except (OSError, http.client.HTTPException) as exc:
            # URLError, socket timeouts, refused and reset connections are all OSError;
            # HTTPException covers a connection dropped mid-answer (IncompleteRead).
            failure = self._transport_error(method, exc)
        except SlackClientError as exc:
            failure = ActionError(
                self._redact(f"slack {method}: client error: {exc}"),
                retryable=False,
                response={"error": type(exc).__name__},
            )
        else:
            data = response.data
            return dict(data) if isinstance(data, dict) else {}
        raise failure

    def _api_error(self, method: str, exc: SlackApiError) -> ActionError:
        status = int(getattr(exc.response, "status_code", 0) or 0)
        data = getattr(exc.response, "data", None)
        code = str(data.get("error", "unknown_error")) if isinstance(data, dict) else "bad_body"
        code = self._redact(code)[:100]
        retryable = status == 429 or status >= 500 or code in _TRANSIENT_ERRORS
        retry_after = None
        if retryable:
            headers = getattr(exc.response, "headers", None) or {}
            retry_after = retry_seconds(_header(headers, "Retry-After"))
        return ActionError(
            f"slack {method} failed: {code} (HTTP {status})",
            retryable=retryable,
            retry_after=retry_after,
            response={"status": status, "error": code},
        )

    def _transport_error(self, method: str, exc: BaseException) -> ActionError:
        kind = "timeout" if _is_timeout(exc) else "connection_error"
        detail = self._redact(str(exc) or type(exc).__name__)[:300]
        return ActionError(
            f"slack {method}: {kind}: {detail}",
            retryable=True,
            response={"error": kind, "detail": detail},
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text


def _name_key(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


def _header(headers: Mapping[str, Any], name: str) -> object:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) and value else value
    return None


def _is_timeout(exc: BaseException) -> bool:
    # urlopen raises TimeoutError on a slow answer but wraps a slow connect in URLError.
    reason = getattr(exc, "reason", None)
    return isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
