"""Benchmark: how many stored events a second the stage chain takes through, per database.

    .venv/bin/python bench/pipeline.py [--events N] [--only sqlite|postgres] [--workers 1 2 4]

Stores N Datadog triggers (four monitors of the example playbooks, each on its own host, so
each opens an incident and plans its playbook's runs), then times the event processor
alone until none is waiting: correlate, lifecycle, match, plan and the batch writes. No
action is called (the runner is not part of this figure; `bench/run.py` measures the
service end to end). Prints one line per database and a `PIPELINE_SUMMARY {json}` line.

`--workers` also times PostgreSQL with that many sequencer processes at once (the events
dealt into partitions as the intake deals them), with storm mode on (these triggers are a
storm: the storm book takes them one batch at a time) and off, and prints each count's rate
against the one-process rate measured in the same run (`WORKERS_SUMMARY {json}`).
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from responder.domain import alert_to_json  # noqa: E402
from responder.intake.datadog import normalise  # noqa: E402
from responder.main import build_redactor, build_registry, build_stages, dealer  # noqa: E402
from responder.pipeline.policy import StreamPolicy  # noqa: E402
from responder.pipeline.process import EventProcessor  # noqa: E402
from responder.playbooks.loader import load_playbooks  # noqa: E402
from responder.settings import Settings  # noqa: E402
from responder.store import events  # noqa: E402
from responder.store.db import create_engine, transaction  # noqa: E402
from responder.store.migrate import upgrade  # noqa: E402
from responder.store.tables import AlertEvent  # noqa: E402

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# One trigger per example monitor, in our webhook template; id, scope and cycle key vary.
MONITORS = (
    ("148275309", "High Payment Failure Rate", "P1", "service:payment,team:payments,env:prod"),
    ("148275400", "Checkout error rate", "P2", "service:checkout,team:storefront,env:prod"),
    ("148275500", "API latency p99", "P3", "service:api,team:platform,env:prod"),
    ("148275600", "Fraud detection down", "P1", "service:fraud,team:risk,env:prod"),
)


def payload(n: int) -> dict[str, Any]:
    monitor_id, name, priority, tags = MONITORS[n % len(MONITORS)]
    return {
        "id": str(7_000_000_000 + n),
        "event_type": "metric_alert_monitor",
        "event_title": f"[{priority}] [Triggered on {{host:h{n}}}] {name}",
        "date": str(int(time.time() * 1000)),
        "last_updated": str(int(time.time() * 1000)),
        "alert": {
            "id": monitor_id,
            "title": f"[{priority}] [Triggered on {{host:h{n}}}] {name}",
            "transition": "Triggered",
            "type": "error",
            "priority": priority,
            "scope": f"host:h{n}",
            "cycle_key": str(8_000_000_000_000 + n),
            "query": "avg(last_5m):avg:some.metric{*} > 1",
        },
        # A service of its own per host: the example playbooks group by service and env, and
        # each event here is to open an incident of its own.
        "tags": tags.replace(",team:", f"-h{n},team:", 1),
    }


def rows(count: int, deal: Any) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        raw = payload(n)
        alert = normalise(copy.deepcopy(raw), now)
        out.append(
            {
                "fingerprint": f"dd:{raw['id']}",
                "source_id": raw["id"],
                "monitor_id": alert.monitor_id,
                "title": alert.title,
                "transition": alert.transition.value,
                "priority": alert.priority,
                "scope": alert.scope,
                "cycle_key": alert.cycle_key,
                "template": alert.template,
                "payload": json.dumps(raw),
                "alert": alert_to_json(alert).decode(),
                "received_at": now,
                "state": "received",
                "deliveries": 1,
                "attempts": 0,
                "part": deal(alert),
            }
        )
    return out


def _settings(url: str) -> Settings:
    return Settings(
        DATABASE_URL=url, RESPONDER_PLAYBOOKS=str(REPO / "playbooks"), RESPONDER_WEBHOOK_TOKEN="x"
    )


def _processor(url: str, storms: bool = True) -> tuple[sa.Engine, EventProcessor]:
    """The event processor as a worker builds it; `storms=False` turns storm mode off."""
    settings = _settings(url)
    engine = create_engine(url)
    registry = build_registry(settings)
    playbooks = load_playbooks(settings.playbooks, registry.params_models())
    stages = build_stages(registry, timedelta(hours=6))
    processor = EventProcessor(
        engine,
        stages,
        lambda: playbooks,
        build_redactor(settings, playbooks),
        policy=StreamPolicy(storm_rate=StreamPolicy().storm_rate if storms else 0),
    )
    return engine, processor


def _store(url: str, count: int) -> None:
    settings = _settings(url)
    engine = create_engine(url)
    try:
        upgrade(engine)
        registry = build_registry(settings)
        playbooks = load_playbooks(settings.playbooks, registry.params_models())
        table = AlertEvent.__table__  # type: ignore[attr-defined]
        with transaction(engine) as conn:
            # Every run starts from nothing: incidents left by the one before would turn
            # these triggers into repeats, which cost less.
            for name in reversed(sa.inspect(conn).get_table_names()):
                if name != "alembic_version":
                    conn.execute(sa.text(f"DELETE FROM {name}"))
            conn.execute(sa.insert(table), rows(count, dealer(engine, playbooks)))
    finally:
        engine.dispose()


def _sequencer(url: str, storms: bool, ready: Any, go: Any, stop: Any, done: Any) -> None:
    """One worker process's sequencer: batches until told to stop."""
    engine, processor = _processor(url, storms)
    ready.set()
    go.wait()
    processed = 0
    while not stop.is_set():
        result = processor.process_batch()
        processed += result.processed
        if not (result.processed or result.failed):
            time.sleep(0.002)  # the rest is in partitions other sequencers hold
    done.put(processed)
    engine.dispose()


def measure_workers(url: str, count: int, workers: int, storms: bool) -> float:
    """Events a second with `workers` sequencer processes on one PostgreSQL database."""
    _store(url, count)
    spawn = multiprocessing.get_context("spawn")
    go, stop, done = spawn.Event(), spawn.Event(), spawn.Queue()
    readies = [spawn.Event() for _ in range(workers)]
    procs = [
        spawn.Process(target=_sequencer, args=(url, storms, ready, go, stop, done))
        for ready in readies
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(120)
    engine = create_engine(url)
    started = time.perf_counter()
    go.set()
    try:
        while True:
            with engine.connect() as conn:
                if events.count_waiting(conn) == 0:
                    break
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        shares = [done.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
        engine.dispose()
    if sum(shares) != count:
        raise SystemExit(f"processed {sum(shares)} of {count} events: {shares}")
    return count / elapsed


def measure(url: str, count: int) -> float:
    _store(url, count)
    engine, processor = _processor(url)
    try:
        started = time.perf_counter()
        done = 0
        while (result := processor.process_batch()).processed or result.failed:
            done += result.processed
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    if done != count:
        raise SystemExit(f"processed {done} of {count} events")
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--only", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="PostgreSQL only")
    args = parser.parse_args()
    summary: dict[str, float] = {}
    if not args.only or "sqlite" in args.only:
        with tempfile.TemporaryDirectory() as folder:
            summary["sqlite"] = measure(f"sqlite:///{folder}/pipeline.db", args.events)
    scaled: dict[str, float] = {}
    if not args.only or "postgres" in args.only:
        name = f"responder_pipeline_{os.getpid()}"
        admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = sa.make_url(PG_SERVER).set(database=name).render_as_string(False)
            summary["postgres"] = measure(url, args.events)
            for storms in (True, False):
                for workers in args.workers:
                    rate = measure_workers(url, args.events, workers, storms)
                    scaled[f"{workers}{'' if storms else '-no-storm'}"] = rate
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    for database, rate in summary.items():
        print(f"{database:<9} {args.events} events through the stage chain: {rate:,.0f} events/s")
    print("PIPELINE_SUMMARY " + json.dumps({k: round(v) for k, v in summary.items()}))
    for key, rate in scaled.items():
        workers, _, storms = key.partition("-")
        one = scaled.get("1" + ("-no-storm" if storms else ""), rate)
        mode = "storm mode off" if storms else "storm mode on (every event a new incident)"
        print(
            f"postgres  {workers} sequencer process(es), {mode}: {rate:,.0f} events/s, "
            f"{rate / one:.2f}x one process ({os.cpu_count()} cores)"
        )
    if scaled:
        print("WORKERS_SUMMARY " + json.dumps({k: round(v) for k, v in scaled.items()}))


if __name__ == "__main__":
    main()
