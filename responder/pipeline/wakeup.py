"""What wakes the worker: events the intake stored, or calls the runner finished."""

from __future__ import annotations

import threading


class Wakeup:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.arrivals = 0  # events stored by this process's intake, in all

    def arrived(self, count: int = 0) -> None:
        # One writer thread reports arrivals, so the count loses no updates.
        self.arrivals += count
        self._event.set()

    def finished(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def clear(self) -> None:
        self._event.clear()
