"""Routing keys by reference: runs record which key they used by name, never by value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.pagerduty.params import ENV_REFERENCE

# How results name the service-wide key (settings read it from this variable).
DEFAULT_REFERENCE = "PAGERDUTY_ROUTING_KEY"
NO_ROUTING_KEY = "no PagerDuty routing key: set PAGERDUTY_ROUTING_KEY or the step's env:NAME"


@dataclass(frozen=True, slots=True)
class Routing:
    """The key an event goes out with: `reference` is what we record, `key` the secret."""

    reference: str
    key: str | None = field(repr=False)  # None: nothing is configured under that name
    note: str | None = None


class RoutingKeys:
    """Turns a step's `env:NAME` (or nothing) into a routing key, falling back to the default."""

    def __init__(self, default: str | None, secret: Callable[[str], str | None]) -> None:
        self._default = _clean(default)
        self._secret = secret

    def resolve(self, reference: str | None) -> Routing:
        if reference is None or reference == DEFAULT_REFERENCE:
            return Routing(DEFAULT_REFERENCE, self._default)
        key = _clean(self._secret(reference))
        if key is not None:
            return Routing(reference, key)
        if self._default is not None:
            # Paging the default service beats paging nobody; the note says what happened.
            note = f"{reference} is not set; sent with the default {DEFAULT_REFERENCE}"
            return Routing(DEFAULT_REFERENCE, self._default, note)
        return Routing(reference, None)


def recorded_reference(*sources: Mapping[str, Any] | None) -> str | None:
    """The first routing reference an earlier run recorded: a trigger's response or its refs."""
    for source in sources:
        if not source:
            continue
        nested = source.get("pagerduty")
        for value in (
            source.get("routing_key"),
            source.get("routing"),
            nested.get("routing") if isinstance(nested, Mapping) else None,
        ):
            if isinstance(value, str) and is_reference(value):
                return value
    return None


def is_reference(value: str) -> bool:
    return value == DEFAULT_REFERENCE or bool(ENV_REFERENCE.match(value))


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None
