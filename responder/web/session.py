"""Who is using the web pages, and that a form was sent by our own page.

A person logs in with the API token and a name: the answer is a session cookie holding the
name and an expiry, signed with a key derived from the token (rotating the token ends every
session). Behind a trusted proxy, the proxy's user header names the person instead
(`RESPONDER_TRUSTED_USER_HEADER`). Every form carries a CSRF token: the HMAC of a random
cookie of the browser's own (signed double submit), checked on every POST, login included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from responder.domain import ACTOR_MAX
from responder.intake.auth import token_matches

SESSION_COOKIE = "responder_session"
CSRF_COOKIE = "responder_csrf"
SESSION_SECONDS = 12 * 3600
NAME_MAX = ACTOR_MAX - 10  # "alice (web)" must fit the incident's acknowledged_by


@dataclass(frozen=True, slots=True)
class User:
    name: str
    via_proxy: bool  # signed in by the proxy: no logout of ours


class Sessions:
    def __init__(self, api_token: str | None, trusted_header: str | None, insecure: bool) -> None:
        self._tokens = [api_token] if api_token else []
        self._header = trusted_header.strip().lower() if trusted_header else None
        self._open = insecure and not self._tokens and not self._header
        # Without a token there are no sessions to sign, only CSRF tokens: a key of this
        # process does (a restart asks for a reload of the form, nothing more).
        seed = api_token.encode() if api_token else secrets.token_bytes(32)
        self._key = hmac.new(seed, b"responder web pages v1", hashlib.sha256).digest()

    @property
    def can_log_in(self) -> bool:
        return bool(self._tokens)

    def user(self, request: Request) -> User | None:
        if self._header:
            name = request.headers.get(self._header, "").strip()
            if name:
                return User(clean_name(name), via_proxy=True)
        if self._open:
            return User("anonymous", via_proxy=True)
        raw = request.cookies.get(SESSION_COOKIE)
        return self._read(raw) if raw and self._tokens else None

    def token_ok(self, token: str) -> bool:
        return bool(self._tokens) and token_matches(token.strip().encode(), self._tokens)

    def log_in(self, response: Response, request: Request, name: str) -> None:
        body = orjson.dumps({"u": name, "exp": int(time.time()) + SESSION_SECONDS})
        value = f"{_b64(body)}.{_b64(self._sign(b'session:' + body))}"
        _cookie(response, request, SESSION_COOKIE, value, "lax", SESSION_SECONDS)

    def log_out(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    def _read(self, raw: str) -> User | None:
        body_part, _, signature = raw.partition(".")
        try:
            body = base64.urlsafe_b64decode(body_part + "=" * (-len(body_part) % 4))
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._sign(b"session:" + body)):
            return None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if data["exp"] < time.time() or not isinstance(data.get("u"), str):
            return None
        return User(data["u"], via_proxy=False)

    # CSRF: the form token is the HMAC of the browser's random cookie and of who is signed
    # in. Without the person, a cookie planted from a sibling domain, with the token the
    # public login page gives for it, would pass for someone else's form.

    def csrf_token(self, request: Request) -> tuple[str, str | None]:
        """The form token, and the cookie to set when the browser has none yet."""
        seed = request.cookies.get(CSRF_COOKIE, "")
        new = None
        if len(seed) != 43:  # 32 random bytes, base64url
            seed = new = secrets.token_urlsafe(32)
        return self._csrf(request, seed), new

    def _csrf(self, request: Request, seed: str) -> str:
        who = self.user(request)
        name = who.name if who is not None else ""
        return _b64(self._sign(b"csrf:" + seed.encode() + b"\0" + name.encode()))

    def keep_csrf_cookie(self, response: Response, request: Request, new: str | None) -> None:
        if new is not None:
            _cookie(response, request, CSRF_COOKIE, new, "strict", None)

    def csrf_ok(self, request: Request, sent: str | None) -> bool:
        seed = request.cookies.get(CSRF_COOKIE, "")
        if len(seed) != 43 or not sent:
            return False
        expected = self._csrf(request, seed)
        return hmac.compare_digest(expected.encode(), sent.encode())

    def _sign(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()


def clean_name(raw: str) -> str:
    """A person's name as the audit will show it: printable, trimmed, at most NAME_MAX."""
    name = "".join(ch for ch in raw if ch.isprintable()).strip()
    return name[:NAME_MAX] or "someone"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _cookie(
    response: Response, request: Request, name: str, value: str, same_site: str, age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
        secure=request.url.scheme == "https",
    )
