"""Tells the incident's conversation (its chat thread) what other runs did: failures, and new
things to open.

A page that could not be sent, or a scaling workflow that failed, must not be known only to
the audit log: the people in the thread are the ones to act on it. And the root message
gains links (Datadog incident, notebook, workflow) as the runs that made them finish.
The recorder reports what finished (`NoticeRules`); the worker plans the messages here
(`NoticePlanner`), as ordinary runs continuing the incident's root post (same lane, same
pacing, same audit trail). Which actions hold the conversation is the composition root's
word (`Conversation`); nothing here names a vendor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from responder.actions import Conversation, Registry, incident_links
from responder.domain import RunState
from responder.pipeline.outcomes import Outcome
from responder.pipeline.planned import new_run, run_records
from responder.records import RunRecord
from responder.redact import Redactor
from responder.store import audit, incidents, runs
from responder.store.db import reader, run_bulk, transaction
from responder.store.ids import RowIds

_ERROR_MAX = 300


@dataclass(frozen=True, slots=True)
class Notice:
    # "failed": a run failed for good; "linked": the incident gained a link; "root": the
    # root post went out, so whatever failed or got linked before it is told now
    kind: str
    run_id: int
    incident_id: int
    event_id: int
    action: str
    error: str | None = None


def new_links(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether `after` brings the incident a link it did not have."""
    for key, value in after.items():
        earlier = before.get(key)
        had = isinstance(earlier, Mapping) and bool(earlier.get("url"))
        if not had and isinstance(value, Mapping) and value.get("url"):
            return True
    return False


class NoticeRules:
    """Which finished runs the conversation should hear about."""

    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation

    def notices(
        self,
        finished: Sequence[tuple[RunRecord, Outcome]],
        ref_changes: Mapping[int, tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> list[Notice]:
        linked = {i for i, (before, after) in ref_changes.items() if new_links(before, after)}
        out: list[Notice] = []
        root, vendor = self._conversation.root, self._conversation.vendor
        for run, outcome in finished:
            if run.action == root and outcome.state is RunState.SUCCEEDED:
                # The thread exists only now: what failed or got linked before it is told now.
                out.append(Notice("root", run.id, run.incident_id, run.event_id, root))
            if run.action.startswith(f"{vendor}."):
                continue  # a thread cannot be told that the thread failed
            common = (run.id, run.incident_id, run.event_id, run.action)
            if outcome.state is RunState.FAILED:
                out.append(Notice("failed", *common, error=outcome.error))
            elif run.incident_id in linked and outcome.refs:
                out.append(Notice("linked", *common))
        return out


class NoticePlanner:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        redactor: Redactor,
        max_age: timedelta,
        conversation: Conversation,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._redactor = redactor
        self._max_age = max_age
        self._conversation = conversation

    def plan(self, notices: Sequence[Notice]) -> int:
        """Plan the thread messages these notices call for; returns how many runs were added."""
        names = self._registry.names()
        talk = self._conversation
        if not notices or talk.root not in names:
            return 0
        incident_ids = sorted({n.incident_id for n in notices})
        with reader(self._engine).connect() as conn:
            roots = runs.first_succeeded(conn, incident_ids=incident_ids, action=talk.root)
            refs = incidents.refs_of(conn, ids=incident_ids)
            notices = [*notices, *self._missed(conn, notices)]
        now = datetime.now(UTC)
        planned: list[RunRecord] = []
        refreshed: set[int] = set()
        for notice in notices:
            root = roots.get(notice.incident_id)
            if root is None:
                continue  # no thread to tell; the run's own record says what happened
            if notice.kind == "failed" and talk.reply in names:
                planned.append(self._failure_reply(notice, root, now))
            elif notice.kind in ("linked", "root") and talk.refresh in names:
                if notice.incident_id in refreshed:
                    continue
                refreshed.add(notice.incident_id)
                links = incident_links(refs.get(notice.incident_id) or {}, exclude=talk.vendor)
                if links:
                    key = "+".join(sorted(link.title for link in links))
                    planned.append(
                        self._follow_on(
                            root,
                            talk.refresh,
                            root.params,
                            root.event_id,
                            f"n:links:{root.id}:{key}",
                            now,
                        )
                    )
        return self._insert(planned)

    def _missed(self, conn: sa.Connection, notices: Sequence[Notice]) -> list[Notice]:
        """Failures of incidents whose root post just went out: told late rather than never."""
        fresh = sorted({n.incident_id for n in notices if n.kind == "root"})
        if not fresh:
            return []
        failed = runs.failed_outside(conn, incident_ids=fresh, vendor=self._conversation.vendor)
        return [
            Notice("failed", r.id, r.incident_id, r.event_id, r.action, r.last_error)
            for r in failed
        ]

    def _failure_reply(self, notice: Notice, root: RunRecord, now: datetime) -> RunRecord:
        error = self._redactor.redact_text(notice.error or "no details")[:_ERROR_MAX]
        params = {
            "channel": root.params.get("channel", ""),
            "notice": f"⚠️ {notice.action} failed: {error}",
        }
        key = f"n:failed:{notice.run_id}"
        return self._follow_on(root, self._conversation.reply, params, notice.event_id, key, now)

    def _follow_on(
        self,
        root: RunRecord,
        action: str,
        params: Mapping[str, Any],
        event_id: int,
        key: str,
        now: datetime,
    ) -> RunRecord:
        """A run continuing the root post because of what another run did (not a new event)."""
        return new_run(
            run_id=0,  # given when inserted
            incident_id=root.incident_id,
            event_id=event_id,
            transition=root.transition,
            action=action,
            due=now,
            now=now,
            max_age=self._max_age,
            playbook=root.playbook,
            playbook_hash=root.playbook_hash,
            step=root.step,
            parent_id=root.id,
            params=params,
            idempotency_key=key,
        )

    def _insert(self, planned: list[RunRecord]) -> int:
        if not planned:
            return 0
        # A failure can arrive twice in one round: as its own notice and among the failures
        # a root post that just went out tells late. One reply each.
        unique = {run.idempotency_key: run for run in reversed(planned)}
        planned = [run for run in planned if unique[run.idempotency_key] is run]
        with transaction(self._engine) as conn:
            taken = runs.existing_keys(conn, keys=list(unique))
            planned = [run for run in planned if run.idempotency_key not in taken]
            if not planned:
                return 0
            ids = RowIds(conn)
            planned = [replace(run, id=ids.take("action_run")) for run in planned]
            run_bulk(conn, runs.insert(self._engine, planned))
            audit.append(conn, run_records(planned, "run.planned"), self._redactor)
        return len(planned)
