"""Webhook authentication: a shared token in a header, a bearer token or HTTP Basic."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence


def header_bytes(value: str) -> bytes:
    """A header value as it was sent: servers hand headers over decoded as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire; its own UTF-8 is what it means
        return value.encode("utf-8")


def presented_token(headers: Mapping[str, str]) -> bytes | None:
    """The token a request carries, from whichever of the three accepted places holds one,
    as the bytes the client sent (a token outside ASCII is compared as its UTF-8)."""
    token = headers.get("x-responder-token")
    if token:
        return header_bytes(token)
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return header_bytes(value.strip())
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            return None
        return decoded.partition(b":")[2] or None
    return None


def token_matches(presented: bytes | None, accepted: Sequence[str]) -> bool:
    """Constant-time comparison against every accepted token (several during a rotation)."""
    if presented is None:
        return False
    matched = False
    for token in accepted:
        # No early exit: the time taken must not tell which token, or how much of it, matched.
        matched |= hmac.compare_digest(presented, token.encode("utf-8"))
    return matched
