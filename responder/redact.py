"""Keeps secrets out of what we store and log: known secret values and secret-looking keys."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# A value that only names where a secret lives (a playbook's `routing_key: env:PD_KEY`, or
# the setting's name) is worth keeping in the record: it says which key was used.
_REFERENCE = re.compile(r"^(?:env:[A-Za-z_][A-Za-z0-9_]*|PAGERDUTY_ROUTING_KEY)$")

# Shorter values would match ordinary words and numbers and blank out half the text.
MIN_SECRET_LENGTH = 6

# Substring match on the key name: "X-Datadog-Signature", "slack_bot_token", "DD_API_KEY".
_SECRET_KEY = re.compile(
    r"token|secret|password|api[_-]?key|app[_-]?key|routing[_-]?key|authorization|signature",
    re.IGNORECASE,
)


# Each match of _SECRET_KEY contains one of these.
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "authorization",
    "signature",
    *(f"{name}{sep}key" for name in ("api", "app", "routing") for sep in ("", "_", "-")),
)


def encoded_forms(secret: str) -> Iterator[str]:
    """`secret` URL-encoded, and the part of its base64 (plain and URL-safe alphabets) that
    is the same wherever in a longer encoded text it starts: at each of the three byte
    offsets, the characters made only of the secret's own bits."""
    yield quote(secret, safe="")
    yield quote_plus(secret, safe="")
    raw = secret.encode("utf-8")
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode("ascii")
        core = encoded[-(-offset * 8 // 6) : (offset + len(raw)) * 8 // 6]
        if len(core) >= MIN_SECRET_LENGTH:
            yield core
            yield core.replace("+", "-").replace("/", "_")


def _trie(words: list[str]) -> str:
    """One pattern for all `words`, shared prefixes factored out: the regex engine then
    tests one character class per position instead of every word in turn (several times
    faster with dozens of words), and a word that extends another is matched whole."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _alternatives(root)


def _alternatives(node: dict[str, Any]) -> str:
    # A run of single characters is written out in a loop: only a branch point recurses,
    # so a long secret costs no stack.
    head: list[str] = []
    while len(node) == 1 and "" not in node:
        ((char, node),) = node.items()
        head.append(re.escape(char))
    branches = [re.escape(char) + _alternatives(child) for char, child in node.items() if char]
    if not branches:
        return "".join(head)
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:  # a word ends here; a longer one is tried first (greedy)
        body = f"(?:{body})?"
    return "".join(head) + body


class Redactor:
    """Replaces known secret values and the values of secret-looking keys with "[REDACTED]"."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._raw: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too from now on (a reloaded playbook's new `env:` keys). Nothing is
        ever taken out: older runs and records may still carry a secret a playbook dropped.
        One caller at a time; readers see the old pattern or the new one, never a mix."""
        raw = self._raw | {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        if raw == self._raw:
            return
        # Also as they look inside JSON text, where quotes and backslashes are escaped, and
        # as a vendor or library may echo them: URL-encoded, or inside base64 (Basic auth).
        values = raw | {json.dumps(s)[1:-1] for s in raw}
        values |= {form for s in raw for form in encoded_forms(s)}
        self._pattern = re.compile(_trie(sorted(values))) if values else None
        self._raw = frozenset(raw)

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every known secret and every secret-keyed value replaced."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {self._key(k): self._item(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact(v) for v in value)
        if isinstance(value, set | frozenset):
            return type(value)(self.redact(v) for v in value)
        return value

    def may_hold_secret_keys(self, text: str) -> bool:
        """False when no secret-looking key name occurs anywhere in `text`.

        Plain substring tests on the lowered text: several times faster than the key
        pattern on long texts, and never a false "no" (every pattern match contains one).
        """
        lowered = text.lower()
        return any(word in lowered for word in _SECRET_WORDS)

    def redact_text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def _key(self, key: Any) -> Any:
        return self.redact_text(key) if isinstance(key, str) else key

    def _item(self, key: Any, value: Any) -> Any:
        # None stays None: it reveals nothing, and "the token was missing" helps debugging.
        if isinstance(key, str) and value is not None and _SECRET_KEY.search(key):
            if isinstance(value, str) and _REFERENCE.match(value):
                return self.redact_text(value)
            return REDACTED
        return self.redact(value)
