"""How deeply a webhook body may nest: bounded well before anything that recurses over it.

orjson refuses more than 1024 levels when it parses, but writes at most 254 when it dumps
(a form's fields are dumped to be stored), and Python's own recursion limit is about 1000.
Our template nests two levels; a hand-made one has no reason to go past a few more.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """True when objects and arrays nest more than `limit` levels inside `data`.

    Iterative, so a hostile body cannot exhaust the stack of the check meant to stop it.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def may_be_too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """False when `body` has too few brackets to nest past `limit`: the usual case, at the
    cost of two byte counts instead of a walk over the decoded value."""
    return body.count(b"[") + body.count(b"{") > limit
