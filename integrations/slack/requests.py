"""Requests Slack sends us: the incident buttons (interactivity) and the `/responder` slash
command. Each is verified as Slack signs it (`v0` HMAC of timestamp and raw body, five
minutes of tolerance, checked by slack-sdk's own `SignatureVerifier`) before it is read."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from slack_sdk.signature import Clock, SignatureVerifier

from integrations.slack.blocks import escape
from responder.actions import (
    BUTTON_SILENCE,
    BUTTON_SILENCE_FOR,
    BUTTON_WORDS,
    ChatRequest,
    ChatUnreadable,
    ChatUnverified,
)

_TIMESTAMP_MAX = 20  # digits: int() of a longer header would be work for nothing
_FIELD_MAX = 4000  # a slash command's text is at most a few thousand characters


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackRequests:
    """Implements responder.actions.ChatGate for Slack."""

    def __init__(self, signing_secret: str | None, now: Callable[[], float] = time.time) -> None:
        secret = (signing_secret or "").strip()
        self._verifier = SignatureVerifier(secret, _Clock(now)) if secret else None

    def button(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest | None:
        self._verify(body, headers)
        raw = _form(body).get("payload")
        try:
            payload = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise ChatUnreadable("no interaction payload")
        if payload.get("type") != "block_actions":
            return None  # a shortcut, a modal: nothing responder offers
        pressed = next(
            (
                action
                for action in _list(payload.get("actions"))
                if isinstance(action, dict) and action.get("action_id") in BUTTON_WORDS
            ),
            None,
        )
        if pressed is None:
            return None
        action_id = str(pressed["action_id"])
        value = _text(pressed.get("value"))
        if value is None:
            raise ChatUnreadable("the button carries no incident id")
        words = f"{BUTTON_WORDS[action_id]} {value}"
        if action_id == BUTTON_SILENCE:
            words = f"{words} {BUTTON_SILENCE_FOR}"
        user = payload.get("user")
        user = user if isinstance(user, dict) else {}
        reference = _text(payload.get("trigger_id")) or _text(pressed.get("action_ts"))
        return _request(words, user.get("id"), _user_name(user), reference)

    def command(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        self._verify(body, headers)
        form = _form(body)
        return _request(
            form.get("text", ""),
            form.get("user_id"),
            form.get("user_name"),
            _text(form.get("trigger_id")),
        )

    def escape(self, text: str) -> str:
        return escape(text)

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._verifier is None:
            raise ChatUnverified("set SLACK_SIGNING_SECRET to accept requests from Slack")
        timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        if not timestamp or not signature:
            raise ChatUnverified("missing X-Slack-Signature or X-Slack-Request-Timestamp")
        # The SDK would raise on a timestamp int() cannot read, and on a body or signature
        # that is not text it can compare: each is a forgery, refused as such.
        if not (timestamp.isascii() and timestamp.isdecimal()) or len(timestamp) > _TIMESTAMP_MAX:
            raise ChatUnverified("X-Slack-Request-Timestamp is not a number")
        try:
            valid = self._verifier.is_valid(body, timestamp, signature)
        except (UnicodeDecodeError, TypeError):
            valid = False
        if not valid:
            raise ChatUnverified("wrong or stale Slack signature")


def _request(
    words: str, user_id: object, user_name: str | None, reference: str | None
) -> ChatRequest:
    if not isinstance(user_id, str) or not user_id.strip():
        raise ChatUnreadable("the request names no Slack user")
    if reference is None:
        raise ChatUnreadable("the request has no trigger_id")
    return ChatRequest(
        words=words[:_FIELD_MAX],
        user_id=user_id.strip()[:64],
        user_name=(user_name or user_id).strip()[:100],
        reference=reference[:60],
        at=datetime.now(UTC),
    )


def _user_name(user: Mapping[str, Any]) -> str | None:
    # Interaction payloads carry `username` (and, for some apps, a legacy `name`).
    return _text(user.get("username")) or _text(user.get("name"))


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ChatUnreadable("the body is not UTF-8") from None
    return {key: values[0] for key, values in urllib.parse.parse_qs(text).items() if values}


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
