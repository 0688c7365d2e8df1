"""Recently planned alerts, as templates and actions see them, shared by pipeline and runner.

The runner needs the alert of a run's event; in one process the pipeline has just parsed
it, so the runner takes it from here instead of loading and parsing the payload again.
A miss (another process, or an old event) falls back to the database.

Entries are kept as JSON bytes, not dicts: tens of thousands of nested dicts would each be
tracked by the garbage collector, whose full collections then paused every thread of the
process (the intake's acknowledgements included) for tens of milliseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson


class AlertContexts:
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, event_id: int, context: dict[str, Any]) -> None:
        encoded = orjson.dumps(context)
        with self._lock:
            self._items[event_id] = encoded
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def take(self, event_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The contexts known for `event_ids` (missing ones are simply absent); each call
        gets its own copies."""
        with self._lock:
            found = {i: self._items[i] for i in event_ids if i in self._items}
        return {i: orjson.loads(encoded) for i, encoded in found.items()}
