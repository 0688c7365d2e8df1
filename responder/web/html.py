"""How the web pages are answered: Jinja2 templates (autoescaped), and the headers that keep
a page from being framed, leaking its address or running a script it did not ship."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from responder.web.charts import duration

_HERE = Path(__file__).parent
STATIC = _HERE / "static"

# No script at all: the pages are forms and links, their live status a meta refresh.
# Inline SVG draws with attributes, never `style`, so no inline style is needed either.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["utc"] = _utc
    return env


def _utc(value: Any) -> str:
    """A time as the pages show it: UTC, to the second, the zone said."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else value.isoformat()
    return text.replace("T", " ")[:19] + " UTC"


class Templates:
    def __init__(self) -> None:
        self._env = environment()

    def page(self, name: str, context: dict[str, Any], status: int = 200) -> Response:
        body = self._env.get_template(name).render(**context)
        return HTMLResponse(body, status, headers={"Cache-Control": "no-store"})


class SecurityHeaders:
    """Adds the security headers to every answer of the app (pages, API, redirects)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
