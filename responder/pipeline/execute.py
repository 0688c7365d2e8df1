"""Runner, second part: call each claimed run's action once, on a thread pool.

Runs of one lane were claimed in order and never together, so calls here need no order of
their own. What a call amounts to waits in a queue for the recorder; each finished call
wakes the worker so that it is recorded promptly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from responder.actions import ActionError, Registry
from responder.domain import RunState
from responder.metrics import Metrics
from responder.pipeline.jobs import Job
from responder.pipeline.outcomes import Finished, Outcome, from_error, from_result
from responder.pipeline.wakeup import Wakeup
from responder.redact import Redactor


class Executor:
    def __init__(
        self,
        registry: Registry,
        redactor: Redactor,
        metrics: Metrics,
        wakeup: Wakeup,
        threads: int,
        retry_scale: float = 1.0,
    ) -> None:
        self._registry = registry
        self._redactor = redactor
        self._metrics = metrics
        self._wakeup = wakeup
        self._retry_scale = retry_scale
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="action")
        # Calls in flight, queued ones included: a few per thread keeps claims batched while
        # every queued call still starts well within its lease (calls time out in seconds).
        self._capacity = threads * 4
        self._inflight = 0
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()

    @property
    def free(self) -> int:
        with self._lock:
            return self._capacity - self._inflight

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._inflight > 0 or not self._done.empty()

    def submit(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            with self._lock:
                self._inflight += 1
            self._pool.submit(self._call, job)

    def finished(self) -> list[Finished]:
        """Every call that finished since the last time this was asked."""
        out: list[Finished] = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _masked(self, outcome: Outcome) -> Outcome:
        """The outcome with secrets masked in what it keeps of the vendor's answer: an error
        body may repeat the request's credentials, encoded in ways a client cannot know."""
        return replace(
            outcome,
            result=self._redactor.redact(outcome.result),
            refs=self._redactor.redact(outcome.refs),
        )

    def _call(self, job: Job) -> None:
        action = self._registry.get(job.run.action)
        started = time.monotonic()
        try:
            outcome = from_result(action.execute(job.ctx), datetime.now(UTC))
        except ActionError as err:
            error = self._redactor.redact_text(err.message)[:2000]
            outcome = from_error(job.run, err, error, datetime.now(UTC), self._retry_scale)
        except Exception as exc:  # an adapter bug: fail visibly rather than retry for hours
            error = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
            outcome = Outcome(
                RunState.FAILED, error=f"unexpected error: {error}", kind="run.failed"
            )
        self._metrics.run_latency.labels(job.run.action).observe(time.monotonic() - started)
        self._done.put((job.run, self._masked(outcome)))
        with self._lock:
            self._inflight -= 1
        self._wakeup.finished()
