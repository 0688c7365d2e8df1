"""`/healthz` (process up), `/readyz` (database reachable, schema current; a refused
playbook reload told), `/metrics`."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from responder.metrics import Metrics
from responder.playbooks.library import PlaybookLibrary
from responder.store.db import ping, reader
from responder.store.migrate import is_current
from responder.web.webhook import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"}, 200)


class Readiness:
    def __init__(self, engine: sa.Engine, playbooks: PlaybookLibrary | None = None) -> None:
        self._engine = reader(engine)
        self._playbooks = playbooks

    async def handle(self, request: Request) -> Response:
        try:
            current = await asyncio.wait_for(asyncio.to_thread(self._check), 5.0)
        except Exception as exc:
            reason = f"database unreachable ({type(exc).__name__})"
            return json_response({"status": "unavailable", "reason": reason}, 503)
        if not current:
            reason = "database schema is out of date: run `responder db upgrade`"
            return json_response({"status": "unavailable", "reason": reason}, 503)
        return json_response({"status": "ready", **self._reload_failure()}, 200)

    def _reload_failure(self) -> dict[str, object]:
        """Still ready after a refused reload: the previous set is whole and runs, and
        taking every replica out of the load balancer for a typo in one file would lose
        the alerts themselves. The answer says so, with the loader's file:line errors."""
        failure = self._playbooks.failure if self._playbooks is not None else None
        if self._playbooks is None or failure is None:
            return {}
        running = self._playbooks.active
        detail = {
            "reload": "failed: the previous playbooks keep running",
            "errors": failure.errors,
            "failed_at": failure.at.isoformat(),
            "running": running.digest,
            "loaded_at": running.loaded_at.isoformat(),
        }
        return {"playbooks": detail}

    def _check(self) -> bool:
        ping(self._engine)
        return is_current(self._engine)


class MetricsEndpoint:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def handle(self, request: Request) -> Response:
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)
