"""`/login` (the API token and a name -> a session cookie) and `/logout`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from responder.web.forms import BadForm, posted
from responder.web.pages import Pages
from responder.web.session import Sessions, clean_name


class Login:
    def __init__(self, pages: Pages, sessions: Sessions) -> None:
        self._pages = pages
        self._sessions = sessions

    async def form(self, request: Request) -> Response:
        user = self._sessions.user(request)
        target = _local(request.query_params.get("next"))
        if user is not None:
            return RedirectResponse(target, 303)
        return self._page(request, target, None, 200)

    async def submit(self, request: Request) -> Response:
        try:
            fields = await posted(request)
        except BadForm as exc:
            return self._page(request, "/", str(exc), 400)
        target = _local(fields.get("next"))
        if not self._sessions.csrf_ok(request, fields.get("csrf")):
            message = "This form has expired. Try again."
            return self._page(request, target, message, 403)
        if not self._sessions.token_ok(fields.get("token", "")):
            return self._page(request, target, "That is not the API token.", 401)
        response = RedirectResponse(target, 303)
        self._sessions.log_in(response, request, clean_name(fields.get("name", "")))
        return response

    async def logout(self, request: Request) -> Response:
        try:
            fields = await posted(request)
        except BadForm:
            fields = {}
        if not self._sessions.csrf_ok(request, fields.get("csrf")):
            return self._page(request, "/", "This form has expired. Try again.", 403)
        response = RedirectResponse("/login", 303)
        self._sessions.log_out(response)
        return response

    def _page(self, request: Request, target: str, error: str | None, status: int) -> Response:
        context = {
            "next": target,
            "error": error,
            "can_log_in": self._sessions.can_log_in,
        }
        return self._pages.render(request, None, "login.html", context, status)


def _local(raw: str | None) -> str:
    """Where to go after logging in: a path of this site only, never another host."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(ord(ch) < 32 for ch in raw):
        return "/"
    return raw
