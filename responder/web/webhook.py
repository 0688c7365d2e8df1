"""`POST /webhooks/datadog`: authenticate, decode, normalise, store durably, then acknowledge.

Nothing here calls a vendor. The answer is 202 only once the event is committed; a database
that cannot be reached gives 503 so that Datadog delivers again; a client's mistake is a 4xx
that names the problem.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from responder.intake.auth import presented_token, token_matches
from responder.intake.datadog import PayloadError, normalise
from responder.metrics import Metrics
from responder.store.intake import IntakeFull, IntakeWriter, Stored

log = structlog.get_logger(__name__)

ACK_TIMEOUT = 10.0  # below Datadog's 15 s, so a slow database still gets a 503, not a hang


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    tokens: tuple[str, ...]
    insecure: bool
    max_body: int


class _BodyTooLarge(Exception):
    pass


def json_response(data: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def _error(status: int, message: str, metrics: Metrics, outcome: str) -> Response:
    metrics.events.labels(outcome).inc()
    headers = {"WWW-Authenticate": 'Bearer realm="responder"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "5"}
    return json_response({"error": message}, status, headers)


class DatadogWebhook:
    def __init__(self, config: WebhookConfig, writer: IntakeWriter, metrics: Metrics) -> None:
        self._config = config
        self._writer = writer
        self._metrics = metrics

    async def handle(self, request: Request) -> Response:
        metrics = self._metrics
        if not self._config.insecure and not token_matches(
            presented_token(request.headers), self._config.tokens
        ):
            return _error(401, "missing or wrong webhook token", metrics, "rejected_auth")
        try:
            body = await _read_body(request, self._config.max_body)
        except _BodyTooLarge:
            message = f"body larger than {self._config.max_body} bytes"
            return _error(413, message, metrics, "rejected_size")
        received_at = datetime.now(UTC)
        try:
            data, payload = _decode(body, request.headers.get("content-type", ""))
            alert = normalise(data, received_at)
        except PayloadError as exc:
            status = 400 if str(exc).startswith("unreadable") or not body else 422
            return _error(status, str(exc), metrics, "rejected_payload")
        fingerprint = (
            f"dd:{alert.source_id}"[:80]
            if alert.source_id
            else f"sha256:{hashlib.sha256(body).hexdigest()}"
        )
        row = {
            "fingerprint": fingerprint,
            "source_id": alert.source_id[:64] if alert.source_id else None,
            "monitor_id": alert.monitor_id[:64] if alert.monitor_id else None,
            "title": alert.title,
            "transition": alert.transition.value,
            "priority": alert.priority,
            "scope": alert.scope,
            "cycle_key": alert.cycle_key[:128] if alert.cycle_key else None,
            "template": alert.template,
            "payload": payload,
            "received_at": received_at,
            "state": "received",
            "deliveries": 1,
            "attempts": 0,
        }
        try:
            stored = await asyncio.wait_for(self._writer.submit(row), ACK_TIMEOUT)
        except (IntakeFull, TimeoutError):
            return _error(503, "intake is saturated; deliver again later", metrics, "unavailable")
        except Exception as exc:
            log.warning("webhook.store_failed", error=type(exc).__name__)
            return _error(503, "database unavailable; deliver again later", metrics, "unavailable")
        return self._answer(stored, alert.notes)

    def _answer(self, stored: Stored, notes: tuple[str, ...]) -> Response:
        outcome = stored.outcome or {}
        body: dict[str, Any] = {
            "event_id": stored.event_id,
            "incident_id": stored.incident_id,
            "playbooks": outcome.get("playbooks"),
            "actions": outcome.get("actions"),
            "state": stored.state,
        }
        if notes:
            body["notes"] = list(notes)
        if stored.duplicate:
            self._metrics.events.labels("duplicate").inc()
            body["duplicate"] = True
            return json_response(body, 200)
        self._metrics.events.labels("accepted").inc()
        return json_response(body, 202)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes, content_type: str) -> tuple[Any, str]:
    """The decoded body and the JSON text we store for it."""
    if not body.strip():
        raise PayloadError("unreadable body: it is empty")
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = dict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            )
        except (UnicodeDecodeError, ValueError):
            raise PayloadError("unreadable body: not a valid URL-encoded form") from None
        data: Any = _form_to_payload(form)
        return data, orjson.dumps(data).decode()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"unreadable body: not valid JSON ({exc})") from None
    return data, body.decode("utf-8")


def _form_to_payload(form: dict[str, str]) -> dict[str, Any]:
    """Datadog's "encode as form" flattens the template; nested values arrive as JSON text."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        stripped = value.strip()
        if stripped.startswith("{") and key in ("alert", "org"):
            try:
                out[key] = orjson.loads(stripped)
                continue
            except orjson.JSONDecodeError:
                pass
        out[key] = value
    return out
