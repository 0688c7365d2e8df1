"""`GET /openapi.json`: served without auth, and naming exactly the routes the app has."""

from __future__ import annotations

from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from responder.main import build_service
from responder.web.openapi import document
from tests.harness import running, settings_for

# Starlette answers HEAD wherever it answers GET; the document names the GET.
_IMPLIED = {"HEAD"}
PAGES = {
    "/",
    "/incidents/{incident_id}",
    "/incidents/{incident_id}/acknowledge",
    "/incidents/{incident_id}/resolve",
    "/incidents/{incident_id}/report.md",
    "/stats",
    "/login",
    "/logout",
    "/static/app.css",
}


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    service = build_service(settings_for(f"sqlite:///{tmp_path}/routes.db"), with_worker=False)
    app = getattr(service.app, "app", None)  # the webhook's fast path wraps the Starlette app
    assert isinstance(app, Starlette)
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r}: describe it in responder/web/openapi.py"
        assert route.methods, route.path
        if not route.include_in_schema:
            # The web pages (HTML for browsers, cookie sessions and CSRF-guarded forms) are
            # not part of the API the document describes for programs; they are tested in
            # tests/test_pages.py and tests/test_browser.py instead.
            assert route.path in PAGES, f"{route.path}: only the web pages are left out"
            continue
        served.update((route.path, method) for method in route.methods - _IMPLIED)
    service.engine.dispose()
    return served


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, operations in document()["paths"].items()
        for method in operations
    }


def test_every_route_is_documented_and_every_documented_route_is_served(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    documented = documented_routes()
    assert served - documented == set(), "served but not in responder/web/openapi.py"
    assert documented - served == set(), "documented but not served"
    assert ("/openapi.json", "GET") in served


def test_every_operation_documents_its_answers_and_its_auth() -> None:
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert "security" in operation, where
            assert operation["responses"], where
            for status, answer in operation["responses"].items():
                assert answer["description"], (where, status)
                assert answer.get("content"), (where, status)
            if operation["security"]:
                assert "401" in operation["responses"], where
    schemes = document()["components"]["securitySchemes"]
    assert schemes["webhookHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Responder-Token",
        "description": schemes["webhookHeader"]["description"],
    }
    assert schemes["apiBearer"]["scheme"] == "bearer"


def test_the_document_is_served_without_a_token(migrated_url: str) -> None:
    with running(settings_for(migrated_url)) as (_, client):
        assert isinstance(client, TestClient)
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = orjson.loads(response.content)
    assert served == orjson.loads(orjson.dumps(document()))
    assert served["openapi"].startswith("3.1")
