"""Tells the incident's Slack thread what other runs did: failures, and new things to open.

A page that could not be sent, or a scaling workflow that failed, must not be known only to
the audit log: the people in the thread are the ones to act on it. And the root message
gains links (Datadog incident, notebook, workflow) as the runs that made them finish.
The runner reports what finished; the worker plans the messages here, as ordinary runs
continuing the incident's root post (same lane, same pacing, same audit trail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from responder.actions import Registry, incident_links
from responder.domain import RunState
from responder.pipeline.plan import RunRow, follow_on
from responder.pipeline.rows import RowIds, run_records
from responder.redact import Redactor
from responder.store import audit
from responder.store.db import bulk_insert, reader, run_bulk, transaction
from responder.store.tables import ActionRun, Incident

_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
ROOT_POST = "slack.post"
FAILURE_REPLY = "slack.reply"
REFRESH = "slack.refresh"
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


class NoticePlanner:
    def __init__(
        self, engine: sa.Engine, registry: Registry, redactor: Redactor, max_age: timedelta
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._redactor = redactor
        self._max_age = max_age

    def plan(self, notices: Sequence[Notice]) -> int:
        """Plan the thread messages these notices call for; returns how many runs were added."""
        names = self._registry.names()
        if not notices or ROOT_POST not in names:
            return 0
        incident_ids = sorted({n.incident_id for n in notices})
        with reader(self._engine).connect() as conn:
            roots = _root_posts(conn, incident_ids)
            refs: dict[int, Any] = dict(
                conn.execute(
                    sa.select(_INCIDENTS.c.id, _INCIDENTS.c.refs).where(
                        _INCIDENTS.c.id.in_(incident_ids)
                    )
                ).all()
            )
        notices = [*notices, *self._missed(notices)]
        now = datetime.now(UTC)
        runs: list[RunRow] = []
        refreshed: set[int] = set()
        for notice in notices:
            root = roots.get(notice.incident_id)
            if root is None:
                continue  # no thread to tell; the run's own record says what happened
            if notice.kind == "failed" and FAILURE_REPLY in names:
                runs.append(self._failure_reply(notice, root, now))
            elif notice.kind in ("linked", "root") and REFRESH in names:
                if notice.incident_id in refreshed:
                    continue
                refreshed.add(notice.incident_id)
                links = incident_links(refs.get(notice.incident_id) or {}, exclude="slack")
                if links:
                    key = "+".join(sorted(link.title for link in links))
                    runs.append(
                        follow_on(
                            root,
                            REFRESH,
                            root["params"] or {},
                            event_id=root["event_id"],
                            idempotency_key=f"n:links:{root['id']}:{key}",
                            now=now,
                            max_age=self._max_age,
                        )
                    )
        return self._insert(runs)

    def _missed(self, notices: Sequence[Notice]) -> list[Notice]:
        """Failures of incidents whose root post just went out: told late rather than never."""
        fresh = sorted({n.incident_id for n in notices if n.kind == "root"})
        if not fresh:
            return []
        query = sa.select(_RUNS).where(
            _RUNS.c.incident_id.in_(fresh),
            _RUNS.c.state == RunState.FAILED.value,
            ~_RUNS.c.action.startswith("slack."),
        )
        with reader(self._engine).connect() as conn:
            failed = conn.execute(query.order_by(_RUNS.c.id)).mappings().all()
        return [
            Notice("failed", r["id"], r["incident_id"], r["event_id"], r["action"], r["last_error"])
            for r in failed
        ]

    def _failure_reply(self, notice: Notice, root: RunRow, now: datetime) -> RunRow:
        error = self._redactor.redact_text(notice.error or "no details")[:_ERROR_MAX]
        text = f"⚠️ {notice.action} failed: {error}"
        return follow_on(
            root,
            FAILURE_REPLY,
            {"channel": (root["params"] or {}).get("channel", ""), "notice": text},
            event_id=notice.event_id,
            idempotency_key=f"n:failed:{notice.run_id}",
            now=now,
            max_age=self._max_age,
        )

    def _insert(self, runs: list[RunRow]) -> int:
        if not runs:
            return 0
        with transaction(self._engine) as conn:
            keys = [run["idempotency_key"] for run in runs]
            taken = set(
                conn.execute(
                    sa.select(_RUNS.c.idempotency_key).where(_RUNS.c.idempotency_key.in_(keys))
                ).scalars()
            )
            runs = [run for run in runs if run["idempotency_key"] not in taken]
            if not runs:
                return 0
            ids = RowIds(conn)
            for run in runs:
                run["id"] = ids.take("action_run")
            run_bulk(conn, bulk_insert(self._engine, _RUNS, runs))
            audit.append(conn, run_records(runs, "run.planned"), self._redactor)
        return len(runs)


def _root_posts(conn: sa.Connection, incident_ids: list[int]) -> dict[int, RunRow]:
    """Each incident's first root post that went out: where its thread is."""
    query = (
        sa.select(_RUNS)
        .where(
            _RUNS.c.incident_id.in_(incident_ids),
            _RUNS.c.action == ROOT_POST,
            _RUNS.c.state == RunState.SUCCEEDED.value,
        )
        .order_by(_RUNS.c.id)
    )
    roots: dict[int, RunRow] = {}
    for row in conn.execute(query).mappings():
        roots.setdefault(row["incident_id"], dict(row))
    return roots


def new_links(before: Mapping[str, Any], added: Mapping[str, Any]) -> bool:
    """Whether `added` brings the incident a link it did not have."""
    for key, value in added.items():
        earlier = before.get(key)
        had = isinstance(earlier, Mapping) and bool(earlier.get("url"))
        if not had and isinstance(value, Mapping) and value.get("url"):
            return True
    return False
