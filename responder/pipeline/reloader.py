"""Reloading a running process's playbooks, on SIGHUP (`request`) or when the folder's files
change (`start`: a poll of their content every two seconds), and saying what came of it.

The new set is built and validated whole before anything sees it. Only a good set replaces
the old one, and only after its `env:` secrets joined the redactor, so no run it plans can
leak one. A bad set keeps the old one running; the reason is logged (file, line, problem),
counted, audited (`playbooks.reload_failed`) and shown by `/readyz`. A good one is audited
as `playbooks.reloaded` with both sets' digests and playbooks.

What a reload leaves alone:
- A step already planned for an incident is never planned again: its identity is incident +
  playbook name + step (`step_key`), whatever the playbook's content hash. A changed
  playbook's new steps run for new incidents; each run keeps the hash that planned it.
- Events already stored keep the partition they were dealt when they arrived; the dealer
  reads the new set for new deliveries. After a change of `group_by`, members of one grouped
  incident can therefore sit in two partitions for a while (and, scaled out, the web process
  may deal by a set the worker has not loaded yet): the processor holds a lock on each
  grouping key for its batch (`hold_locks` in process.py), so those batches take turns and
  a grouped incident is never opened twice. Incidents already open keep their grouping key.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
import structlog

from responder.metrics import Metrics
from responder.playbooks.library import PlaybookLibrary, PlaybookSet, Reload
from responder.playbooks.loader import PlaybookError
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.store import audit
from responder.store.db import transaction

log = structlog.get_logger(__name__)
WATCH_SECONDS = 2.0


class PlaybookReloader:
    def __init__(
        self,
        library: PlaybookLibrary,
        engine: sa.Engine,
        redactor: Redactor,
        metrics: Metrics,
        secrets: Callable[[Sequence[Playbook]], Iterable[str]],
        *,
        every: float = WATCH_SECONDS,
    ) -> None:
        self._library = library
        self._engine = engine
        self._redactor = redactor
        self._metrics = metrics
        self._secrets = secrets
        self._every = every
        self._lock = threading.Lock()  # the watch thread and a direct call take turns
        self._asked = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = library.fingerprint()  # the files the running set was read from
        self._pending: str | None = None
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        metrics.playbook_set(library.active.digest, len(library.active.playbooks))
        metrics.playbook_reload_failed.set(0)

    def request(self) -> None:
        """Ask the watch thread for a reload: all a signal handler may safely do."""
        self._asked.set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="playbook-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._asked.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            asked = self._asked.wait(self._every)
            if self._stopping.is_set():
                return
            self._asked.clear()
            try:
                self.poll(asked=asked)
            except Exception:  # a bug here must not end the watch; the old set still runs
                log.exception("playbooks.watch_failed")

    def poll(self, *, asked: bool = False) -> Reload | None:
        """A reload when asked, or when the files changed and have stayed so for one poll
        (an editor's half-written file is not worth an alarm)."""
        if asked:
            return self.reload("signal")
        seen = self._library.fingerprint()
        if seen == self._loaded:
            self._pending = None
            return None
        if seen != self._pending:
            self._pending = seen
            return None
        return self.reload("file change")

    def reload(self, trigger: str) -> Reload:
        with self._lock:
            self._loaded, self._pending = self._library.fingerprint(), None
            try:
                new = self._library.build()
            except PlaybookError as exc:
                errors = [self._redactor.redact_text(line) for line in exc.errors]
                outcome = self._library.refuse(errors, trigger)
            except OSError as exc:  # a file gone between reads (a ConfigMap swap, say)
                self._loaded = ""  # the same files are tried again at the next look
                error = f"{self._library.folder}: {type(exc).__name__}: {exc.strerror or exc}"
                outcome = self._library.refuse([self._redactor.redact_text(error)], trigger)
            else:
                self._redactor.add(self._secrets(new.playbooks))
                outcome = self._library.adopt(new, trigger)
            self._report(outcome)
            return outcome

    def _report(self, outcome: Reload) -> None:
        self._metrics.playbook_reloads.labels(result=outcome.result).inc()
        self._metrics.playbook_reload_failed.set(1 if outcome.failure is not None else 0)
        if outcome.new is not None:
            self._metrics.playbook_set(outcome.new.digest, len(outcome.new.playbooks))
        where = {"trigger": outcome.trigger, "folder": str(self._library.folder)}
        if outcome.failure is not None:
            log.error(
                "playbooks.reload_failed",
                **where,
                errors=outcome.failure.errors,
                running=outcome.old.digest,
            )
            self._audit("playbooks.reload_failed", {"errors": outcome.failure.errors}, outcome)
            return
        assert outcome.new is not None
        changes = outcome.changes()
        if outcome.result == "unchanged" and not outcome.recovered:
            log.info("playbooks.reload_unchanged", **where, digest=outcome.new.digest)
            return
        log.info(
            "playbooks.reloaded",
            **where,
            old=outcome.old.digest,
            new=outcome.new.digest,
            recovered=outcome.recovered,
            **changes,
        )
        data = {"new": _described(outcome.new), "recovered": outcome.recovered, **changes}
        self._audit("playbooks.reloaded", data, outcome)

    def _audit(self, kind: str, data: dict[str, Any], outcome: Reload) -> None:
        record = audit.AuditRecord(
            kind,
            {
                "trigger": outcome.trigger,
                "folder": str(self._library.folder),
                "process": self._process,  # scaled out, each process reloads on its own
                "old": _described(outcome.old),
                **data,
            },
        )
        try:
            with transaction(self._engine) as conn:
                audit.append(conn, [record], self._redactor)
        except Exception as exc:  # the reload stands; the log line above already tells it
            log.warning("playbooks.reload_not_audited", kind=kind, error=type(exc).__name__)


def _described(playbooks: PlaybookSet) -> dict[str, Any]:
    return {"digest": playbooks.digest, "playbooks": playbooks.hashes()}
