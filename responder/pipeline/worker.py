"""The worker loop: process stored events, then dispatch due action runs; never dies."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
import structlog

from responder.domain import RunState
from responder.metrics import Metrics
from responder.pipeline.notices import NoticePlanner
from responder.pipeline.process import EventProcessor
from responder.pipeline.runner import ActionRunner
from responder.pipeline.timers import TimerSweep
from responder.pipeline.wakeup import Wakeup
from responder.store import events, runs
from responder.store.db import DISK_FULL, disk_full, reader

log = structlog.get_logger(__name__)
# The longest rest after failed rounds. The webhook takes events again the moment the
# database is back; a worker resting 30 s more left them (and their pages) waiting that long.
_MOST_BACKOFF = 5.0
_GAUGE_EVERY = 2.0
_GATHER_SECONDS = 0.005
# Under load the intake comes first: a webhook not acknowledged is one Datadog may give up
# on, while an event acknowledged is safe on disk and only waits its turn. A worker sharing
# the process with the intake (same GIL, same SQLite write lock) therefore rests after each
# busy round, in proportion to the arrival rate: from BUSY_RATE arrivals a second it takes
# small batches and rests, up to YIELD_FACTOR times its round's length at STORM_RATE and
# above, so it keeps about a third of the time and catches up once the storm passes.
# (A sharp switch at one rate flapped around it and gave the worst latency just there.)
BUSY_RATE = 100.0
STORM_RATE = 1000.0
STORM_BATCH = 10
YIELD_FACTOR = 2.0
_RATE_WINDOW = 0.25


class Worker:
    def __init__(
        self,
        engine: sa.Engine,
        processor: EventProcessor,
        runner: ActionRunner,
        metrics: Metrics,
        wakeup: Wakeup,
        poll_seconds: float,
        notices: NoticePlanner | None = None,
        timers: TimerSweep | None = None,
    ) -> None:
        self._engine = engine
        self._timers = timers
        self._notices = notices
        self._processor = processor
        self._runner = runner
        self._metrics = metrics
        self._poll = poll_seconds
        self._wake = wakeup
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._gauges_at = 0.0
        self._rate_from = (time.monotonic(), 0)
        self.arrival_rate = 0.0
        self.storm = False

    def wake(self, arrived: int = 0) -> None:
        """Something to do: `arrived` new events stored by the intake."""
        self._wake.arrived(arrived)

    def _in_storm(self) -> bool:
        now = time.monotonic()
        since, counted = self._rate_from
        if now - since >= _RATE_WINDOW:
            arrivals = self._wake.arrivals
            self.arrival_rate = (arrivals - counted) / (now - since)
            self._rate_from = (now, arrivals)
        return self.arrival_rate >= BUSY_RATE

    def _rest(self, took: float) -> float:
        """How long to leave the intake alone after a busy round that took `took` seconds."""
        if self.arrival_rate < BUSY_RATE:
            return 0.0
        return took * YIELD_FACTOR * min(1.0, self.arrival_rate / STORM_RATE)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.finished()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._runner.shutdown()

    def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                busy = self.step()
                failures = 0
            except Exception as exc:  # database down, or a bug: log, back off, carry on
                failures += 1
                if disk_full(exc):  # said plainly: only an operator freeing space ends it
                    log.error("worker.disk_full", consecutive=failures, error=DISK_FULL)
                else:
                    log.exception("worker.step_failed", consecutive=failures)
                self._stopping.wait(min(self._poll * 2**failures, _MOST_BACKOFF))
                continue
            if busy and self.storm:
                self._metrics.worker_yields.inc()
                self._stopping.wait(self._rest(time.monotonic() - started))
            elif not busy:
                if self._wake.wait(self._poll):
                    # Let a few more arrivals join: one round for several events costs far
                    # less than a round each, and the wait is short next to a page's latency.
                    self._stopping.wait(_GATHER_SECONDS)
                self._wake.clear()

    def step(self) -> bool:
        """One round; True when there may be more to do right away."""
        # Small batches under load: each holds the SQLite write lock, which the intake's
        # next commit (and every webhook waiting on it) would otherwise queue behind.
        self.storm = self._in_storm()
        fired = self._timers.sweep() if self._timers and self._timers.due() else 0
        batch = self._processor.process_batch(STORM_BATCH if self.storm else None)
        if batch.processed:
            self._metrics.events_processed.labels("processed").inc(batch.processed)
        if batch.failed:
            self._metrics.events_processed.labels("failed").inc(batch.failed)
        self._runner.start(batch.taken)  # committed by now: their calls may begin
        dispatched = self._runner.dispatch()
        told = self._notices.plan(dispatched.notices) if self._notices else 0
        self._update_gauges()
        return bool(batch.processed or batch.failed or dispatched.progress or told or fired)

    def drain(self, timeout: float = 30.0) -> bool:
        """Run until nothing is due and nothing is in flight (tests and one-shot use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.step() and self._runner.idle and not self._pending_now():
                return True
            time.sleep(0.005)
        return False

    def _pending_now(self) -> bool:
        waiting, runs_by_state = self._queue_depths()
        return bool(waiting or runs_by_state.get(RunState.RUNNING, 0))

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now - self._gauges_at < _GAUGE_EVERY:
            return
        self._gauges_at = now
        waiting, counts = self._queue_depths()
        self._metrics.queue_depth.labels("events").set(waiting)
        self._metrics.queue_depth.labels("runs_pending").set(counts.get(RunState.PENDING, 0))
        self._metrics.queue_depth.labels("runs_running").set(counts.get(RunState.RUNNING, 0))

    def _queue_depths(self) -> tuple[int, dict[str, int]]:
        """Events waiting, and runs pending or running by state."""
        with reader(self._engine).connect() as conn:
            waiting = events.count_waiting(conn)
            states = [RunState.PENDING.value, RunState.RUNNING.value]
            return waiting, runs.count_by_state(conn, states=states)
