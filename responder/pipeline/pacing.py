"""Keeps calls under a vendor's rate limit before the vendor has to refuse them.

Slack takes about one message per second per channel and may silently drop a burst above
that; PagerDuty takes about 120 events a minute per routing key. An action names what it
is paced on (`Action.pace`); the runner asks here before it leases a run. A run that would
go too soon is booked the next free slot and left pending until then, so a storm of posts
to one channel goes out at the channel's pace, in order, instead of 429s and retries.

In-process: several PostgreSQL workers each keep their own books, so the pace they hold
together is a multiple of this one; the vendor's 429 and the runner's retry still cover it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

# A booked run that comes back this close to its slot goes: the worker's wake-up is not exact.
_EARLY = timedelta(milliseconds=50)
_FORGET = timedelta(minutes=1)


class Pacer:
    def __init__(self) -> None:
        self._next_free: dict[str, datetime] = {}
        self._booked: dict[int, datetime] = {}
        self._went: dict[str, datetime] = {}  # when the last call of each key was let go
        self._lock = threading.Lock()

    def slot(self, key: str, interval: float, run_id: int, now: datetime) -> datetime | None:
        """None: the run may call now (its slot is taken). Else: the time it must wait for.

        A booked run comes back when the worker next looks, which may be a poll after its
        slot; the run after it must still keep the interval from when that one actually
        went, not from its slot, or two calls leave closer together than the vendor allows.
        """
        gap = timedelta(seconds=interval)
        with self._lock:
            went = self._went.get(key)
            earliest = now if went is None else max(now, went + gap - _EARLY)
            booked = self._booked.pop(run_id, None)
            if booked is not None:
                due = max(booked, earliest)
                if due <= now + _EARLY:
                    self._went[key] = now
                    return None
                self._booked[run_id] = due
                self._next_free[key] = max(self._next_free.get(key, due), due + gap)
                return due
            start = max(self._next_free.get(key, now), earliest)
            self._next_free[key] = start + gap
            if start <= now:
                self._went[key] = now
                return None
            self._booked[run_id] = start
            return start

    def went(self, key: str, interval: float, at: datetime) -> None:
        """A call of `key` leaves at `at`, later than its slot was taken (a run taken over
        as it was planned goes only once its batch is committed): what follows keeps the
        interval from then."""
        with self._lock:
            self._went[key] = max(self._went.get(key, at), at)
            after = at + timedelta(seconds=interval)
            self._next_free[key] = max(self._next_free.get(key, after), after)

    def release(self, run_id: int) -> None:
        """Forget a booking whose run will not come back (settled some other way)."""
        with self._lock:
            self._booked.pop(run_id, None)

    def waiting(self, now: datetime) -> bool:
        """Whether a booked run is still to come back (bookings long past are dropped)."""
        with self._lock:
            stale = [run for run, at in self._booked.items() if at < now - _FORGET]
            for run in stale:
                del self._booked[run]  # claimed by another worker, or cancelled meanwhile
            return bool(self._booked)
