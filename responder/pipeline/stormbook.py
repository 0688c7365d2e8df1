"""The channels' storms one batch touches (storm mode), read when first asked for.

Which channels a batch touches is known only once its playbooks are rendered, so the book
reads the live rows (channels in a storm, or with a new incident within the rate window)
the first time a stage asks, in the batch's own connection: a batch that opens no incident
reads nothing. Stages put what changed on their event (`EventItem.storms`); the batch keeps
it here once the event went through (`BatchWrite.keep`) and writes it back with the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from responder.domain import RunState
from responder.records import StormRecord
from responder.store import runs, storms
from responder.store.db import hold_locks

WINDOW = timedelta(minutes=1)  # the rate is new incidents per minute


class StormBook:
    def __init__(
        self,
        load: Callable[[], Mapping[str, StormRecord]] | None = None,
        waiting: Callable[[int], bool] | None = None,
    ) -> None:
        self._load = load
        self._waiting = waiting
        self._storms: dict[str, StormRecord] | None = None
        self.changed: set[str] = set()  # channels to write back
        self.planned: set[int] = set()  # summary runs planned by this batch, not stored yet
        self.params: dict[int, dict[str, Any]] = {}  # new params of waiting summary updates

    @classmethod
    def reading(cls, conn: sa.Connection, now: datetime) -> StormBook:
        # Asked for each new incident of a storm, nearly always about the same summary update:
        # read once per batch (a storm of 1,000 new incidents spent a quarter of its
        # processing time re-reading it).
        known: dict[int, bool] = {}

        def waiting(run_id: int) -> bool:
            if run_id not in known:
                found = runs.by_ids(conn, ids=[run_id]).get(run_id)
                known[run_id] = (
                    found is not None and found.state == RunState.PENDING and found.not_before > now
                )
            return known[run_id]

        def load() -> Mapping[str, StormRecord]:
            # Held until the batch commits: several sequencers count new incidents against
            # the same channels, and each must see what the one before it wrote.
            hold_locks(conn, "storm-book", [""])
            return storms.live(conn, since=now - WINDOW)

        return cls(load, waiting)

    def all(self) -> dict[str, StormRecord]:
        if self._storms is None:
            self._storms = dict(self._load()) if self._load is not None else {}
        return self._storms

    def get(self, channel: str) -> StormRecord | None:
        return self.all().get(channel)

    def keep(self, storm: StormRecord) -> None:
        self.all()[storm.channel] = storm
        self.changed.add(storm.channel)

    def took(
        self,
        changed: Iterable[StormRecord],
        planned: Iterable[int],
        refreshed: Mapping[int, dict[str, Any]],
    ) -> None:
        """What one event that went through changed: its channels' storms, and new params of
        waiting summary updates; a pending update among the runs it `planned` is not
        stored yet."""
        new_runs = set(planned)
        for storm in changed:
            self.keep(storm)
            if storm.pending_run_id in new_runs:
                self.planned.add(storm.pending_run_id)
        self.params.update(refreshed)

    def waiting(self, run_id: int) -> bool:
        """Whether a summary update has not gone yet, so that new figures may still join it."""
        if run_id in self.planned:
            return True
        return self._waiting(run_id) if self._waiting is not None else False

    def changed_storms(self) -> list[StormRecord]:
        return [self.all()[channel] for channel in sorted(self.changed)]
