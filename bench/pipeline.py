"""Benchmark: how many stored events a second the stage chain takes through, per database.

    .venv/bin/python bench/pipeline.py [--events N] [--only sqlite|postgres]

Stores N Datadog triggers (four monitors of the example playbooks, each on its own host, so
each opens an incident and plans its playbook's runs), then times the event processor
alone until none is waiting: correlate, lifecycle, match, plan and the batch writes. No
action is called (the runner is not part of this figure; `bench/run.py` measures the
service end to end). Prints one line per database and a `PIPELINE_SUMMARY {json}` line.
"""

from __future__ import annotations

import argparse
import copy
import json
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
from responder.main import build_redactor, build_registry, build_stages  # noqa: E402
from responder.pipeline.process import EventProcessor  # noqa: E402
from responder.playbooks.loader import load_playbooks  # noqa: E402
from responder.settings import Settings  # noqa: E402
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
        "tags": tags,
    }


def rows(count: int) -> list[dict[str, Any]]:
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
            }
        )
    return out


def measure(url: str, count: int) -> float:
    settings = Settings(
        DATABASE_URL=url, RESPONDER_PLAYBOOKS=str(REPO / "playbooks"), RESPONDER_WEBHOOK_TOKEN="x"
    )
    engine = create_engine(url)
    try:
        upgrade(engine)
        registry = build_registry(settings)
        playbooks = load_playbooks(settings.playbooks, registry.params_models())
        with transaction(engine) as conn:
            conn.execute(sa.insert(AlertEvent.__table__), rows(count))  # type: ignore[attr-defined]
        stages = build_stages(registry, timedelta(hours=6))
        processor = EventProcessor(
            engine, stages, lambda: playbooks, build_redactor(settings, playbooks)
        )
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
    args = parser.parse_args()
    summary: dict[str, float] = {}
    if not args.only or "sqlite" in args.only:
        with tempfile.TemporaryDirectory() as folder:
            summary["sqlite"] = measure(f"sqlite:///{folder}/pipeline.db", args.events)
    if not args.only or "postgres" in args.only:
        name = f"responder_pipeline_{os.getpid()}"
        admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = sa.make_url(PG_SERVER).set(database=name).render_as_string(False)
            summary["postgres"] = measure(url, args.events)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    for database, rate in summary.items():
        print(f"{database:<9} {args.events} events through the stage chain: {rate:,.0f} events/s")
    print("PIPELINE_SUMMARY " + json.dumps({k: round(v) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
