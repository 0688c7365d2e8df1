"""Recently planned alerts, shared by pipeline and runner.

The runner needs the alert of a run's event; in one process the pipeline has just parsed
it, so the runner takes it from here instead of loading and parsing the payload again.
A miss (another process, or an old event) falls back to the database.

Entries are kept as JSON bytes, not Alerts: tens of thousands of Alerts and their dicts
would each be tracked by the garbage collector, whose full collections then paused every
thread of the process (the intake's acknowledgements included) for tens of milliseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from responder.domain import Alert, alert_from_json, alert_to_json


class AlertContexts:
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, event_id: int, alert: Alert) -> None:
        encoded = alert_to_json(alert)
        with self._lock:
            self._items[event_id] = encoded
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def take(self, event_ids: Iterable[int]) -> dict[int, Alert]:
        """The alerts known for `event_ids` (missing ones are simply absent); each call
        gets its own copies."""
        with self._lock:
            found = {i: self._items[i] for i in event_ids if i in self._items}
        return {i: alert_from_json(encoded) for i, encoded in found.items()}
