"""A worker killed with SIGKILL mid-call, under load, on PostgreSQL with two workers.

The vendor has done the work and holds its answer back when the kill lands, so the run's
outcome was never recorded: a replacement worker adopts it once its lease expires, checks
first, and nothing is done twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from responder.store.db import create_engine
from tests.backlog import settled
from tests.databases import restore
from tests.fakes.pagerduty import EVENTS
from tests.fraud_alerts import problems, recovered, triggered
from tests.load import Background, send
from tests.processes import processes, service_env, wait_until
from tests.vendors import vendors

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# The first one's page is the call in flight at the kill. PagerDuty's pacing (one event a
# routing key every 0.55 s) sets the pace: 24 pages and 24 resolves take half a minute.
MONITORS = 24
ACTIONS = 3  # security.yaml: a page, a Datadog incident, a Slack post (and follow-ups)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    return restore(request, "postgres")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    made = create_engine(postgres_url)
    yield made
    made.dispose()


def run_states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = "SELECT state, count(*) FROM action_run GROUP BY state"
        return {state: n for state, n in conn.execute(sa.text(query)).all()}


def runs_by_action(engine: sa.Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        query = "SELECT action, state, count(*) FROM action_run GROUP BY action, state"
        return {(action, state): n for action, state, n in conn.execute(sa.text(query)).all()}


def running(engine: sa.Engine) -> dict[int, str]:
    """The runs in flight: id -> the worker that holds them (`host:pid:...`)."""
    with engine.connect() as conn:
        query = "SELECT id, lease_owner FROM action_run WHERE state = 'running'"
        return {run_id: owner for run_id, owner in conn.execute(sa.text(query)).all()}


def audit_kinds(engine: sa.Engine, kind: str, run_id: int) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM audit_entry WHERE kind = :kind AND run_id = :run"
        return int(conn.execute(sa.text(query), {"kind": kind, "run": run_id}).scalar_one())


def test_a_worker_killed_while_vendors_hold_their_answers_is_replaced_and_nothing_runs_twice(
    postgres_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    with vendors() as fakes:
        env = service_env(postgres_url, fakes)
        with processes(env, tmp_path / "logs") as procs:
            procs.web()
            victim = procs.worker()
            # The first monitor's page, Datadog incident and Slack post are each done by
            # the vendor, whose answer then takes a minute: all three calls are in flight,
            # in the one worker there is, when it dies.
            fakes.pagerduty.delay_next(EVENTS, 60.0)
            fakes.datadog.delay_next("CreateIncident", 60.0)
            fakes.slack.delay_next("chat.postMessage", 60.0)
            assert send(procs.url, [triggered(0)], rate=1).answers == [202]
            wait_until(lambda: len(running(engine)) == ACTIONS, 20, "three calls in flight")
            held = running(engine)
            assert {owner.split(":")[1] for owner in held.values()} == {str(victim.pid)}
            procs.worker()  # the second worker, which the load keeps busy

            load = Background(procs.url, [triggered(n) for n in range(1, MONITORS)], rate=40)
            load.start()
            time.sleep(0.5)
            procs.kill(victim)
            procs.worker()  # the replacement, as a platform restarts a crashed process
            sent = load.join()
            assert sent.kinds() == {202: MONITORS - 1}

            wait_until(lambda: settled(engine), 60, "every run to finish")
            assert run_states(engine).keys() == {"succeeded"}, runs_by_action(engine)
            assert problems(fakes, range(MONITORS), recovered=False) == []
            # The held runs were adopted: each attempted again, after a check.
            for run_id in held:
                assert audit_kinds(engine, "run.lease_expired", run_id) == 1
                assert audit_kinds(engine, "run.attempt", run_id) == 2

            recoveries = send(procs.url, [recovered(n) for n in range(MONITORS)], rate=40)
            assert recoveries.kinds() == {202: MONITORS}
            # Each recovery: the page resolved, the Datadog incident resolved, a reply in
            # the thread and the root turned resolved (follow-ups, whatever their count).
            wait_until(lambda: settled(engine), 60, "the recoveries")
            assert run_states(engine).keys() == {"succeeded"}, runs_by_action(engine)
            assert problems(fakes, range(MONITORS), recovered=True) == []
            # The page held at the kill was sent again and PagerDuty folded it into the
            # open alert (its dedup key is the incident's): no other trigger repeated.
            repeated = [
                e.dedup_key for e in fakes.pagerduty.events() if e.outcome == "deduplicated"
            ]
            assert repeated in ([], [fakes.pagerduty.events()[0].dedup_key])
            procs.audit_verified()
