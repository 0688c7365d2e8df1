"""The Starlette application: routes, and the lifespan that starts the writer and worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from responder.actions import ChatGate
from responder.domain import Alert, Verb
from responder.metrics import Metrics
from responder.pipeline.answers import AnswerDesk, Silencer
from responder.pipeline.silencer import SilenceDesk
from responder.playbooks.library import PlaybookLibrary
from responder.redact import Redactor
from responder.store.intake import IntakeWriter
from responder.web.answers import answer_endpoint
from responder.web.api import HistoryApi
from responder.web.chat import ChatEndpoints
from responder.web.commands import Commands
from responder.web.exports import Exports
from responder.web.health import MetricsEndpoint, Readiness, healthz
from responder.web.html import SecurityHeaders
from responder.web.login import Login
from responder.web.openapi import openapi
from responder.web.pagerduty import PagerDutyWebhook
from responder.web.pages import Pages
from responder.web.session import Sessions
from responder.web.silences import SilenceApi
from responder.web.stats_page import StatsPage
from responder.web.webhook import DatadogWebhook, WebhookConfig

WEBHOOK_PATH = "/webhooks/datadog"


@dataclass(frozen=True, slots=True)
class InboundParts:
    """What people's answers from PagerDuty and Slack need (see web.pagerduty, web.chat)."""

    redactor: Redactor
    pagerduty_secret: str | None  # None: /webhooks/pagerduty refuses every delivery (401)
    chat: ChatGate  # verifies and reads Slack's requests (integrations.slack.requests)
    silencer: Silencer | None  # None: "silence" answers that silences are not available


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
    silences: SilenceDesk
    inbound: InboundParts
    playbooks: PlaybookLibrary | None = None  # `/readyz` tells a refused reload
    redactor: Redactor = field(default_factory=lambda: Redactor([]))
    trusted_user_header: str | None = None  # the web pages' user, named by a trusted proxy


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
    silences = SilenceApi(parts.silences)
    inbound = parts.inbound
    pagerduty = PagerDutyWebhook(
        parts.desk,
        inbound.pagerduty_secret,
        parts.engine,
        inbound.redactor,
        parts.webhook.max_body,
    )
    commands = Commands(parts.desk, parts.engine, inbound.silencer, inbound.chat.escape)
    chat = ChatEndpoints(inbound.chat, commands, parts.webhook.max_body)
    exports = Exports(parts.engine, api, parts.redactor)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        parts.start()
        try:
            yield
        finally:
            parts.stop()

    routes = [
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route("/webhooks/pagerduty", pagerduty.handle, methods=["POST"]),
        Route("/slack/interactions", chat.interactions, methods=["POST"]),
        Route("/slack/commands", chat.slash_command, methods=["POST"]),
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
        Route("/api/silences", api.guard(silences.listing), methods=["GET"]),
        Route("/api/silences", api.guard(silences.create), methods=["POST"]),
        Route("/api/silences/{silence_id}/expire", api.guard(silences.expire), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(parts.engine, parts.playbooks).handle, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(parts.metrics).handle, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *page_routes(parts),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    return _Entry(webhook, app)


def page_routes(parts: AppParts) -> list[Route]:
    """The web pages, for browsers: HTML, cookie sessions, forms. They are left out of
    /openapi.json (`include_in_schema=False`), which describes the API for programs."""
    sessions = Sessions(parts.api_token, parts.trusted_user_header, parts.insecure)
    pages = Pages(parts.engine, sessions, parts.desk, parts.redactor)
    login = Login(pages, sessions)
    gate = pages.gate
    for_people = [
        ("/", gate(pages.incidents), "GET"),
        ("/incidents/{incident_id}", gate(pages.incident), "GET"),
        ("/incidents/{incident_id}/acknowledge", gate(pages.answer(Verb.ACKNOWLEDGE)), "POST"),
        ("/incidents/{incident_id}/resolve", gate(pages.answer(Verb.RESOLVE)), "POST"),
        ("/incidents/{incident_id}/report.md", gate(pages.report), "GET"),
        ("/stats", gate(StatsPage(parts.engine, pages, parts.redactor).show), "GET"),
        ("/login", login.form, "GET"),
        ("/login", login.submit, "POST"),
        ("/logout", login.logout, "POST"),
        ("/static/app.css", pages.css, "GET"),
    ]
    return [
        Route(path, endpoint, methods=[method], include_in_schema=False)
        for path, endpoint, method in for_people
    ]
