"""The Starlette application: routes, and the lifespan that starts the writer and worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from responder.domain import Alert, Verb
from responder.metrics import Metrics
from responder.pipeline.answers import AnswerDesk
from responder.store.intake import IntakeWriter
from responder.web.answers import answer_endpoint
from responder.web.api import HistoryApi
from responder.web.exports import Exports
from responder.web.health import MetricsEndpoint, Readiness, healthz
from responder.web.openapi import openapi
from responder.web.webhook import DatadogWebhook, WebhookConfig

WEBHOOK_PATH = "/webhooks/datadog"


@dataclass(frozen=True, slots=True)
class AppParts:
    """What the web layer serves, handed over by the composition root."""

    webhook: WebhookConfig
    writer: IntakeWriter
    deal: Callable[[Alert], int]  # the sequencer partition of a delivery
    metrics: Metrics
    engine: sa.Engine
    api_token: str | None
    insecure: bool
    start: Callable[[], None]  # the lifespan's start (intake writer, in-process worker)
    stop: Callable[[], None]
    desk: AnswerDesk  # where people's answers go (acknowledge, resolve)


class _Entry:
    """Sends webhook deliveries straight to their handler, everything else to Starlette.

    The webhook is the hot path under an alert storm; the framework's middleware and router
    cost more per request than the handler's own work. The handler catches its own errors.
    """

    def __init__(self, webhook: DatadogWebhook, app: Starlette) -> None:
        self._webhook = webhook
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self._webhook(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(parts: AppParts) -> ASGIApp:
    webhook = DatadogWebhook(parts.webhook, parts.writer, parts.metrics, parts.deal)
    api = HistoryApi(parts.engine, parts.api_token, parts.insecure)
    exports = Exports(parts.engine, api)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        parts.start()
        try:
            yield
        finally:
            parts.stop()

    routes = [
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route("/api/incidents", api.guard(api.incidents), methods=["GET"]),
        Route("/api/incidents.csv", exports.incidents_csv, methods=["GET"]),
        Route("/api/incidents/{incident_id}/report.md", exports.report, methods=["GET"]),
        Route("/api/incidents/{incident_id}", api.guard(api.incident), methods=["GET"]),
        Route(
            "/api/incidents/{incident_id}/acknowledge",
            answer_endpoint(parts.desk, Verb.ACKNOWLEDGE, api.refusal),
            methods=["POST"],
        ),
        Route(
            "/api/incidents/{incident_id}/resolve",
            answer_endpoint(parts.desk, Verb.RESOLVE, api.refusal),
            methods=["POST"],
        ),
        Route("/api/audit", api.guard(api.audit), methods=["GET"]),
        Route("/api/stats", api.guard(api.stats), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(parts.engine).handle, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(parts.metrics).handle, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return _Entry(webhook, Starlette(routes=routes, lifespan=lifespan))
