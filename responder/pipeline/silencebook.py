"""The silences one batch respects, read from the database when a stage first asks.

Silences live in the database, not in a worker's memory: every worker reads the same rows,
so several workers agree on what is silenced, and a restart forgets nothing. One read per
batch keeps it cheap however many events the batch holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from responder.records import SilenceRecord
from responder.store import silences

# Timers' events are judged at their due time, which a backlog may put in the past: the
# silences that ended this long before the batch are still read.
LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Covered:
    """The silence or window an event falls under (the one ending last, if several)."""

    until: datetime
    reason: str
    silence_id: int | None = None  # None: a maintenance window
    window: str | None = None
    author: str | None = None

    @property
    def label(self) -> str:
        return f"silence {self.silence_id}" if self.window is None else f"window {self.window}"

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = {"until": self.until, "reason": self.reason}
        if self.window is None:
            data.update(silence_id=self.silence_id, author=self.author)
        else:
            data["window"] = self.window
        return data


class SilenceBook:
    def __init__(self, load: Callable[[], Sequence[SilenceRecord]] | None = None) -> None:
        self._load = load
        self._silences: dict[int, SilenceRecord] | None = None

    @classmethod
    def reading(cls, conn: sa.Connection, now: datetime) -> SilenceBook:
        return cls(lambda: silences.not_over(conn, since=now - LOOKBACK))

    def all(self) -> list[SilenceRecord]:
        if self._silences is None:
            loaded = self._load() if self._load is not None else ()
            self._silences = {silence.id: silence for silence in loaded}
        return list(self._silences.values())

    def get(self, silence_id: int) -> SilenceRecord | None:
        self.all()
        assert self._silences is not None
        return self._silences.get(silence_id)
