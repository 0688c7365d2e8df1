"""`POST /webhooks/datadog`: authenticate, decode, normalise, store durably, then acknowledge.

Nothing here calls a vendor. The answer is 202 only once the event is committed; a database
that cannot be reached gives 503 so that Datadog delivers again; a client's mistake is a 4xx
that names the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from responder.domain import Alert
from responder.intake.auth import presented_token, token_matches
from responder.intake.datadog import PayloadError, decode, normalise
from responder.logs import Sparse
from responder.metrics import Metrics
from responder.store.db import DISK_FULL, disk_full
from responder.store.intake import IntakeFull, IntakeWriter, Stored, event_row

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


_JSON = (b"content-type", b"application/json")
_EXTRA_HEADERS = {
    401: [(b"www-authenticate", b'Bearer realm="responder"')],
    503: [(b"retry-after", b"5")],
}
_WANTED = {
    name.encode(): name
    for name in ("x-responder-token", "authorization", "content-type", "content-length")
}


class DatadogWebhook:
    """A plain ASGI app: the hot path of the service skips the framework's request objects."""

    def __init__(
        self,
        config: WebhookConfig,
        writer: IntakeWriter,
        metrics: Metrics,
        deal: Callable[[Alert], int],
    ) -> None:
        self._config = config
        self._writer = writer
        self._deal = deal  # the event's sequencer partition
        self._failing = Sparse(log)  # the database refusing every webhook: a line now and then
        self._counts = {
            outcome: metrics.events.labels(outcome)
            for outcome in (
                "accepted",
                "duplicate",
                "rejected_auth",
                "rejected_size",
                "rejected_payload",
                "unavailable",
            )
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, data = await self._handle(scope, receive)
        body = orjson.dumps(data)
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        headers.extend(_EXTRA_HEADERS.get(status, ()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _error(self, status: int, message: str, outcome: str) -> tuple[int, dict[str, Any]]:
        self._counts[outcome].inc()
        return status, {"error": message}

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        headers = {
            _WANTED[name]: value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _WANTED  # the server hands names over lower-cased, as bytes
        }
        if not self._config.insecure and not token_matches(
            presented_token(headers), self._config.tokens
        ):
            return self._error(401, "missing or wrong webhook token", "rejected_auth")
        try:
            body = await _read_body(receive, headers.get("content-length"), self._config.max_body)
        except _BodyTooLarge:
            message = f"body larger than {self._config.max_body} bytes"
            return self._error(413, message, "rejected_size")
        received_at = datetime.now(UTC)
        try:
            data, payload = decode(body, headers.get("content-type", ""))
            alert = normalise(data, received_at)
        except PayloadError as exc:
            status = 400 if str(exc).startswith("unreadable") or not body else 422
            return self._error(status, str(exc), "rejected_payload")
        # The payload alone: the alert's JSON beside it doubled the bytes every commit writes
        # (and PostgreSQL compresses), on the path the acknowledgement waits for, to save the
        # worker one normalise per event, which is a small part of processing it.
        row = event_row(alert, body, payload, received_at, part=self._deal(alert), keep_alert=False)
        try:
            stored = await self._writer.submit(row, ACK_TIMEOUT)
        except (IntakeFull, TimeoutError):
            return self._error(503, "intake is saturated; deliver again later", "unavailable")
        except Exception as exc:
            if disk_full(exc):
                self._failing("error", "webhook.disk_full", error=DISK_FULL)
                return self._error(503, "database disk is full; deliver again later", "unavailable")
            self._failing("warning", "webhook.store_failed", error=type(exc).__name__)
            return self._error(503, "database unavailable; deliver again later", "unavailable")
        return self._answer(stored, alert.notes)

    def _answer(self, stored: Stored, notes: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
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
            self._counts["duplicate"].inc()
            body["duplicate"] = True
            return 200, body
        self._counts["accepted"].inc()
        return 202, body


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what we have is judged as it is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
