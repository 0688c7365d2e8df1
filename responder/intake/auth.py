"""Webhook authentication: a shared token in a header, a bearer token or HTTP Basic."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request carries, from whichever of the three accepted places holds one."""
    token = headers.get("x-responder-token")
    if token:
        return token
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def token_matches(presented: str | None, accepted: Sequence[str]) -> bool:
    """Constant-time comparison against every accepted token (several during a rotation)."""
    if presented is None:
        return False
    given = presented.encode("utf-8")
    matched = False
    for token in accepted:
        # No early exit: the time taken must not tell which token, or how much of it, matched.
        matched |= hmac.compare_digest(given, token.encode("utf-8"))
    return matched
