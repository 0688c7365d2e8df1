"""The PagerDuty calls responder makes, over SDK clients that try exactly once.

Translates every pagerduty / httpx2 outcome into plain dicts or `ActionError`; SDK types,
and the secrets their exceptions carry, stop here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pagerduty

from responder.actions import ActionError, retry_seconds

ENQUEUE = "/v2/enqueue"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Statuses the SDK would otherwise retry with blocking sleeps (429 forever). With
# `max_http_attempts = -1`, a positive entry means "hand the first answer back".
_ONE_ANSWER = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
_TEXT_MAX = 500
_ERRORS_MAX = 10


def checked_base_url(url: str) -> str:
    """An https:// base URL, or plain http:// to this machine (a test fake); else ValueError.

    Routing keys travel in the request body, so they must never cross a network in clear.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not parts.netloc or not (parts.scheme == "https" or local):
        shown = f"{parts.scheme}://{parts.hostname}" if parts.netloc else repr(url)
        raise ValueError(
            f"PagerDuty base URL {shown} must start with https:// "
            "(plain http:// only for 127.0.0.1 or localhost)"
        )
    return url


class _CheckedUrl:
    """Replaces the SDK's https-only `url` setter with `checked_base_url`."""

    _checked_url: str = ""

    @property
    def url(self) -> str:
        return self._checked_url

    @url.setter
    def url(self, value: str) -> None:
        self._checked_url = checked_base_url(value)


class _EventsClient(_CheckedUrl, pagerduty.EventsApiV2Client):
    pass


class _RestClient(_CheckedUrl, pagerduty.RestApiV2Client):
    pass


def _one_attempt(client: pagerduty.ApiClient, timeout: float) -> None:
    # httpx2 takes fractional seconds; the SDK's int comes from its default of 60.
    client.timeout = timeout  # type: ignore[assignment]
    client.retry.update(_ONE_ANSWER)
    client.max_http_attempts = -1
    # The first transport error raises instead of sleeping and reconnecting.
    client.max_network_attempts = 0


def build_events_client(routing_key: str, base_url: str, timeout: float) -> pagerduty.ApiClient:
    # The spec's server URL ends in /v2, the SDK's paths start with it: accept either.
    base = checked_base_url(base_url).removesuffix("/v2")
    client = _EventsClient(routing_key, base_url=base)
    _one_attempt(client, timeout)
    return client


def build_rest_client(
    token: str, from_email: str, base_url: str, timeout: float
) -> pagerduty.ApiClient:
    client = _RestClient(token, default_from=from_email, base_url=checked_base_url(base_url))
    _one_attempt(client, timeout)
    return client


class EventsApi:
    """POST /v2/enqueue with any routing key; one pooled SDK client per key."""

    def __init__(
        self, make_client: Callable[[str], pagerduty.ApiClient], secrets: list[str]
    ) -> None:
        self._make_client = make_client
        self._secrets = secrets  # the service's other PagerDuty secrets, scrubbed too
        self._clients: dict[str, pagerduty.ApiClient] = {}
        self._lock = threading.Lock()

    def send(self, routing_key: str, event: Mapping[str, Any]) -> dict[str, str]:
        """PagerDuty's answer to one event: {"status", "message", "dedup_key"}."""
        client = self._client(routing_key)
        secrets = [routing_key, *self._secrets]
        # The SDK adds the routing key to (a copy of) the body.
        response = _send("event", lambda: client.post(ENQUEUE, json=dict(event)), secrets)
        body = _json(response)
        if not response.is_success:
            raise _status_error("event", response, body, secrets)
        answer = body if isinstance(body, dict) else {}
        return {
            "status": _clean(answer.get("status"), secrets) or "success",
            "message": _clean(answer.get("message"), secrets) or "",
            "dedup_key": _clean(answer.get("dedup_key"), secrets)
            or str(event.get("dedup_key", "")),
        }

    def _client(self, routing_key: str) -> pagerduty.ApiClient:
        with self._lock:
            client = self._clients.get(routing_key)
            if client is None:
                client = self._clients[routing_key] = self._make_client(routing_key)
            return client


class IncidentsApi:
    """The REST API v2 calls for incident notes (token auth, `From:` header)."""

    def __init__(self, client: pagerduty.ApiClient, secrets: list[str]) -> None:
        self._client = client
        self._secrets = secrets  # the token first; any other PagerDuty secret too

    def find_by_key(self, incident_key: str) -> list[dict[str, Any]]:
        """Incidents whose alert carries our dedup key, of any age (default is one month)."""
        params: dict[str, str | int] = {
            "incident_key": incident_key,
            "date_range": "all",
            "limit": 25,
        }
        body = self._call("incident lookup", lambda: self._client.get("/incidents", params=params))
        items = body.get("incidents")
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        path = f"/incidents/{quote(incident_id, safe='')}/notes"
        body = self._call("note lookup", lambda: self._client.get(path))
        items = body.get("notes")
        return [n for n in items if isinstance(n, dict)] if isinstance(items, list) else []

    def add_note(self, incident_id: str, content: str) -> dict[str, Any]:
        path = f"/incidents/{quote(incident_id, safe='')}/notes"
        note = {"note": {"content": content}}
        body = self._call("note", lambda: self._client.post(path, json=note))
        created = body.get("note")
        return created if isinstance(created, dict) else {}

    def _call(self, what: str, send: Callable[[], httpx2.Response]) -> dict[str, Any]:
        response = _send(what, send, self._secrets)
        body = _json(response)
        if not response.is_success:
            raise _status_error(what, response, body, self._secrets)
        return body if isinstance(body, dict) else {}


def _send(what: str, send: Callable[[], httpx2.Response], secrets: list[str]) -> httpx2.Response:
    # Failures are raised outside the `except` blocks so they carry no __context__: the
    # SDK's exceptions hold the request, and with it the routing key or the API token.
    failure: ActionError
    try:
        return send()
    except pagerduty.Error as exc:
        # A 401 is raised rather than returned, a 3xx as ServerHttpError; transport errors
        # come wrapped, with the httpx2 exception as the cause.
        if exc.response is not None:
            failure = _status_error(what, exc.response, _json(exc.response), secrets)
        else:
            failure = _transport_error(what, exc.__cause__ or exc)
    except httpx2.HTTPError as exc:
        failure = _transport_error(what, exc)
    except pagerduty.UrlError:
        failure = ActionError(f"pagerduty {what}: bad URL", retryable=False)
    raise failure


def _status_error(
    what: str, response: httpx2.Response, body: object, secrets: list[str]
) -> ActionError:
    status = response.status_code
    details = _answer(body, secrets)
    retry_after: float | None = None
    retryable = status in (408, 429) or status >= 500
    if retryable:
        retry_after = retry_seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            # REST API v2 says when the rate-limit window resets, in seconds.
            retry_after = retry_seconds(response.headers.get("ratelimit-reset"))
    summary = " ".join(
        str(part)
        for part in (details.get("error"), details.get("message"), *details.get("errors", []))
        if part
    )
    if 300 <= status < 400:
        summary = "unexpected redirect"
    message = f"pagerduty {what} failed: HTTP {status}" + (f": {summary}" if summary else "")
    return ActionError(
        _redact(message, secrets)[:1000],
        retryable=retryable,
        retry_after=retry_after,
        response={"status": status, **details},
    )


def _answer(body: object, secrets: list[str]) -> dict[str, Any]:
    """PagerDuty's error fields: Events API {status, message, errors}, REST {error: {...}}."""
    if not isinstance(body, dict):
        return {}
    inner = body.get("error")
    out: dict[str, Any] = {}
    if isinstance(inner, dict):
        out["error"] = _clean(inner.get("message"), secrets)
        if isinstance(inner.get("code"), int):
            out["code"] = inner["code"]
        errors = inner.get("errors")
    else:
        out["error"] = _clean(body.get("status"), secrets)
        out["message"] = _clean(body.get("message"), secrets)
        errors = body.get("errors")
    if isinstance(errors, list):
        out["errors"] = [_clean(e, secrets) for e in errors[:_ERRORS_MAX] if isinstance(e, str)]
    return {name: value for name, value in out.items() if value}


def _transport_error(what: str, exc: BaseException) -> ActionError:
    if isinstance(exc, httpx2.TimeoutException):
        kind = "timeout"
    elif isinstance(exc, httpx2.HTTPError):
        kind = "connection_error"
    else:
        # pagerduty.Error without a transport cause: a request the SDK refused to make.
        return ActionError(
            f"pagerduty {what}: client error ({type(exc).__name__})",
            retryable=False,
            response={"error": "client_error"},
        )
    # Only the exception's class: httpx2 messages can quote the URL, never worth the risk.
    detail = type(exc).__name__
    return ActionError(
        f"pagerduty {what}: {kind} ({detail})",
        retryable=True,
        response={"error": kind, "detail": detail},
    )


def _json(response: httpx2.Response | None) -> object:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _clean(value: object, secrets: list[str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return _redact(value.strip(), secrets)[:_TEXT_MAX]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
