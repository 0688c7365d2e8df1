"""Storm benchmark (issue 10): an alert storm through the whole service and the vendor fakes.

    .venv/bin/python bench/storm.py            # 10,000 alerts over 60 s, SQLite then PostgreSQL
    .venv/bin/python bench/storm.py --quick    # 1,000 alerts over 10 s
    .venv/bin/python bench/storm.py --db sqlite --alerts 5000 --seconds 30

50 monitors (5 per service) alert per host on 200 hosts of 10 services: 10,000 Triggered,
Re-Triggered and Renotify deliveries and a Recovered for every alert cycle, sent open loop
at planned times over 60 s, in our webhook template, to `responder serve` (web and worker in
one process) with the example playbooks. Slack, PagerDuty and Datadog are the fakes of
tests/fakes, running in this process; the Slack fake answers 429 above one message per second
per channel. The generator is seeded: every run, and both databases, get the same storm.

It prints, per database, acks per second and ack latency, incidents, pages, Slack calls per
channel per second, 429s, the time from the last alert until every event and action run has
settled, peak memory, CPU per alert and the audit rows against what was received and done;
then PASS/FAIL per target and a last line `STORM_SUMMARY {json}`. Results and logs land in
bench/results/storm-<time>/ (gitignored). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The fakes live with the tests, which import them as `tests.fakes.*` from the repo root.
sys.path.insert(0, str(REPO))

from run import (  # noqa: E402  (bench/run.py: the process and CPU helpers of the bench)
    NOISY_OTHER_PCT,
    PG_SERVER,
    RESPONDER,
    RESULTS,
    TOKEN,
    BenchError,
    Server,
    cpu_seconds,
    free_port,
    host_busy_seconds,
    pct,
    run_checked,
    running,
    serve_argv,
    service_env,
    tail,
    wait_for_idle,
)

from tests.fakes.datadog import FakeDatadog  # noqa: E402
from tests.fakes.pagerduty import API_TOKEN as PD_API_TOKEN  # noqa: E402
from tests.fakes.pagerduty import ROUTING_KEY, USER_EMAIL, FakePagerDuty  # noqa: E402
from tests.fakes.server import Answer, Request  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

WEBHOOK = "/webhooks/datadog"
PLAYBOOKS = REPO / "playbooks"
SLACK_TOKEN = "xoxb-storm-bench-token"
DD_API_KEY, DD_APP_KEY = "dd-api-storm-bench", "dd-app-storm-bench"
SEED = 10  # issue 10

# The storm's shape. One alert cycle is a Triggered, its repeats and its Recovered; cycles
# average this many non-recovery deliveries (1 Triggered + 3 repeats), so 10,000 alerts make
# 2,500 cycles over the 1,000 monitor x host scopes: hosts flap, as they do in a storm.
ALERTS_PER_CYCLE = 4
HOSTS_PER_SERVICE = 20
# Deliveries of one scope are at least this far apart, so that they reach the service in the
# order of their Datadog dates (the service orders by arrival; ack p99 is far below this).
MIN_GAP_S = 0.5
SENDER_CONNECTIONS = 1000  # the sender's connection pool; beyond it requests wait (counted)
REQUEST_TIMEOUT_S = 30.0

# Targets (issue 10), printed PASS/FAIL.
MAX_ACK_P99_MS = 50.0
MAX_SETTLE_S = 120.0

FINAL_RUN_STATES = ("succeeded", "failed", "skipped", "cancelled")
FINAL_RUN_KINDS = ("run.succeeded", "run.failed", "run.skipped", "run.cancelled")


# ----------------------------------------------------------------------------- the storm


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    team: str
    priority: str
    playbook: str  # which example playbook its tags route to (for the reader)


# service:checkout-service -> checkout.yaml; service:payment + team:payments + P1 ->
# payments.yaml; team:platform -> platform.yaml; team:security -> security.yaml; the last
# four match no playbook and land in the `unrouted` fallback.
SERVICES = (
    Service("checkout-service", "storefront", "P2", "checkout-error-rate"),
    Service("payment", "payments", "P1", "payment-failure-rate"),
    Service("api-gateway", "platform", "P3", "api-latency"),
    Service("auth", "platform", "P2", "api-latency"),
    Service("fraud", "security", "P1", "fraud-detection-down"),
    Service("risk-scoring", "security", "P2", "fraud-detection-down"),
    Service("inventory", "warehouse", "P3", "unrouted"),
    Service("shipping", "logistics", "P3", "unrouted"),
    Service("search", "discovery", "P4", "unrouted"),
    Service("notifications", "growth", "P4", "unrouted"),
)
# Five per-host monitors per service: (name, metric, threshold).
MONITOR_KINDS = (
    ("High error rate", "trace.http.request.errors", "> 50"),
    ("High p99 latency", "trace.http.request.duration", "> 2"),
    ("CPU saturated", "system.cpu.user", "> 90"),
    ("Memory pressure", "system.mem.pct_usable", "< 0.1"),
    ("Disk almost full", "system.disk.in_use", "> 0.9"),
)
REPEATS = ("Re-Triggered", "Renotify")


@dataclass(frozen=True, slots=True)
class Monitor:
    id: str
    name: str
    service: Service
    metric: str
    query: str


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float  # seconds after the storm's start
    id: str  # Datadog's $ID: unique per delivery
    monitor: Monitor
    host: str
    transition: str
    cycle_key: str


@dataclass(frozen=True)
class StormPlan:
    deliveries: list[Delivery]  # in order of `at`
    alerts: int  # non-recovery deliveries
    cycles: int  # = recoveries
    seconds: float
    min_gap_s: float
    seed: int

    def count(self, what: str) -> int:
        """Distinct services, monitors or hosts that had a Triggered delivery."""
        key: Callable[[Delivery], str] = {
            "services": lambda d: d.monitor.service.name,
            "monitors": lambda d: d.monitor.id,
            "hosts": lambda d: d.host,
        }[what]
        return len({key(d) for d in self.deliveries if d.transition == "Triggered"})


def monitors() -> list[Monitor]:
    out = []
    for s, service in enumerate(SERVICES):
        for k, (name, metric, threshold) in enumerate(MONITOR_KINDS):
            out.append(
                Monitor(
                    id=str(160_000_000 + 100 * s + k),
                    name=f"{name} on {service.name}",
                    service=service,
                    metric=metric,
                    query=f"avg(last_5m):avg:{metric}{{service:{service.name}}} by {{host}} "
                    f"{threshold}",
                )
            )
    return out


def hosts(service_index: int) -> list[str]:
    return [f"ip-10-{service_index}-0-{h}" for h in range(HOSTS_PER_SERVICE)]


def build_plan(alerts: int, seconds: float, seed: int) -> StormPlan:
    """The storm, deterministic for a seed: which scope alerts when, with which transition."""
    rng = random.Random(seed)
    scopes = [
        (monitor, host) for monitor in monitors() for host in hosts(SERVICES.index(monitor.service))
    ]
    cycles = max(1, min(alerts, round(alerts / ALERTS_PER_CYCLE)))
    repeats = [0] * cycles
    for _ in range(alerts - cycles):
        repeats[rng.randrange(cycles)] += 1
    by_scope: dict[int, list[int]] = defaultdict(list)
    for cycle in range(cycles):
        by_scope[rng.randrange(len(scopes))].append(cycle)
    deliveries: list[Delivery] = []
    smallest_gap = MIN_GAP_S
    for scope_index, scope_cycles in sorted(by_scope.items()):
        monitor, host = scopes[scope_index]
        steps: list[tuple[str, str]] = []  # (transition, cycle key), in the scope's order
        for cycle in scope_cycles:
            key = str(7_716_548_300_000_000_000 + cycle)
            steps.append(("Triggered", key))
            steps += [(rng.choice(REPEATS), key) for _ in range(repeats[cycle])]
            steps.append(("Recovered", key))
        # The scope's deliveries spread at random over the window, at least `gap` apart.
        gap = min(MIN_GAP_S, seconds / (len(steps) + 1))
        smallest_gap = min(smallest_gap, gap)
        room = seconds - gap * (len(steps) - 1)
        times = sorted(rng.uniform(0, room) for _ in steps)
        for i, ((transition, key), at) in enumerate(zip(steps, times, strict=True)):
            deliveries.append(Delivery(at + i * gap, "", monitor, host, transition, key))
    deliveries.sort(key=lambda d: d.at)
    # Ids in order of time, like Datadog's event ids.
    numbered = [replace(d, id=str(7_716_548_200_000_000_000 + n)) for n, d in enumerate(deliveries)]
    return StormPlan(numbered, alerts, cycles, seconds, smallest_gap, seed)


def payload(delivery: Delivery) -> dict[str, Any]:
    """One delivery in our webhook template (responder/intake/webhook-template.json), as
    Datadog fills it in; `date` and `last_updated` are set by the sender at its start."""
    monitor, service = delivery.monitor, delivery.monitor.service
    title = f"[{delivery.transition} on {{host:{delivery.host}}}] {monitor.name}"
    recovered = delivery.transition == "Recovered"
    verb = "recovered" if recovered else "is above its threshold"
    return {
        "id": delivery.id,
        "event_type": "query_alert_monitor",
        "event_title": title,
        "event_msg": f"{monitor.name} {verb} on {delivery.host}.\n@webhook-responder",
        "date": None,
        "last_updated": None,
        "link": f"https://app.datadoghq.com/event/event?id={delivery.id}",
        "snapshot": "https://p.datadoghq.com/snapshot/view/dd-snapshots-prod/org_1234/"
        f"storm/{delivery.id}.png",
        "org": {"id": "1234", "name": "Acme Payments"},
        "alert": {
            "id": monitor.id,
            "title": title,
            "transition": delivery.transition,
            "type": "success" if recovered else "error",
            "priority": service.priority,
            "status": f"{monitor.metric}{{host:{delivery.host}}} {verb}",
            "query": monitor.query,
            "metric": monitor.metric,
            "scope": f"host:{delivery.host}",
            "cycle_key": delivery.cycle_key,
            "aggreg_key": hashlib.md5(
                f"{monitor.id}|{delivery.host}".encode(), usedforsecurity=False
            ).hexdigest(),
        },
        "hostname": delivery.host,
        "tags": f"env:prod,host:{delivery.host},monitor,service:{service.name},team:{service.team}",
    }


# ----------------------------------------------------------------------------- vendor fakes


@dataclass(frozen=True, slots=True)
class Call:
    at: float  # time.time() when the request reached the fake
    route: str  # Slack method, PagerDuty kind, Datadog operationId
    status: int
    channel: str | None = None  # Slack: the channel's ID
    error: str | None = None  # Slack: {"ok": false, "error": ...} (answered with HTTP 200)


class CallLog:
    """Every request a fake answered, with its time and status. The fakes keep what was
    posted but not when nor what they answered, which the storm's figures need."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def add(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)


class StormSlack(FakeSlack):
    """The Slack fake, unchanged, noting each call's time, channel and answer."""

    def __init__(self, token: str, channels: dict[str, str]) -> None:
        super().__init__(token=token, channels=channels)
        self.log = CallLog()

    def answer(self, request: Request) -> Answer:
        arrived = time.time()
        status, headers, body = super().answer(request)
        error = body.get("error") if isinstance(body, dict) and not body.get("ok") else None
        method = urlsplit(request.target).path.removeprefix("/api/")
        self.log.add(Call(arrived, method, status, self._channel_of(request), error))
        return status, headers, body

    def _channel_of(self, request: Request) -> str | None:
        kind = request.headers.get("Content-Type", "")
        try:
            if kind.startswith("application/json"):
                value = json.loads(request.body or b"{}").get("channel")
            else:
                value = dict(parse_qsl(request.body.decode())).get("channel")
        except (ValueError, AttributeError):
            return None
        if not isinstance(value, str):
            return None
        # chat.postMessage may name the channel; one channel must count as one.
        return self.channels.get(value.lstrip("#"), value)


class StormPagerDuty(FakePagerDuty):
    def __init__(self, routing_keys: tuple[str, ...]) -> None:
        super().__init__(routing_keys=routing_keys)
        self.log = CallLog()

    def answer(self, request: Request) -> Answer:
        arrived = time.time()
        answer = super().answer(request)
        self.log.add(Call(arrived, self.route_key(request.target), answer[0]))
        return answer


class StormDatadog(FakeDatadog):
    def __init__(self, workflows: set[str]) -> None:
        super().__init__(api_key=DD_API_KEY, app_key=DD_APP_KEY, workflows=workflows)
        self.log = CallLog()

    def answer(self, request: Request) -> Answer:
        arrived = time.time()
        answer = super().answer(request)
        route = self._route(request.method, urlsplit(request.target).path)[0]
        self.log.add(Call(arrived, route, answer[0]))
        return answer


@dataclass
class Fakes:
    slack: StormSlack
    pagerduty: StormPagerDuty
    datadog: StormDatadog
    env: dict[str, str]  # what the service needs to reach them


def playbook_values(folder: Path, key: str) -> set[str]:
    """Every string under `key` in the playbooks' YAML: channels, workflow ids, routing keys."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                if name == key and isinstance(value, str):
                    found.add(value.strip())
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(folder.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            walk(document)
    return found


@contextlib.contextmanager
def vendor_fakes(playbooks: Path) -> Iterator[Fakes]:
    """The three fakes, knowing every channel, routing key and workflow the playbooks name:
    an unknown one would fail runs for a reason that is not the storm's."""
    names = sorted(c.lstrip("#") for c in playbook_values(playbooks, "channel"))
    # IDs shaped like Slack's (C + upper case), or the client takes them for names.
    channels = {f"#{name}": f"C0STORM{i:03d}" for i, name in enumerate(names)}
    env_keys = sorted(ref.removeprefix("env:") for ref in playbook_values(playbooks, "routing_key"))
    # PagerDuty integration keys are 32 characters; one per env: reference, and the default.
    team_keys = {name: f"STORM{i:027d}" for i, name in enumerate(env_keys)}
    workflows = playbook_values(playbooks, "workflow_id")
    with (
        StormSlack(SLACK_TOKEN, channels) as slack,
        StormPagerDuty((ROUTING_KEY, *team_keys.values())) as pagerduty,
        StormDatadog(workflows) as datadog,
    ):
        slack.rate_limit_channels()  # 429 above one chat.postMessage per second per channel
        datadog.finish_instances(after_polls=1)  # the scaling workflow succeeds
        env = {
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "RESPONDER_SLACK_API_URL": slack.base_url,
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "PAGERDUTY_API_TOKEN": PD_API_TOKEN,
            "PAGERDUTY_FROM_EMAIL": USER_EMAIL,
            "RESPONDER_PAGERDUTY_EVENTS_URL": pagerduty.events_url,
            "RESPONDER_PAGERDUTY_API_URL": pagerduty.api_url,
            "DD_API_KEY": DD_API_KEY,
            "DD_APP_KEY": DD_APP_KEY,
            "RESPONDER_DATADOG_API_URL": datadog.base_url,
            **team_keys,
        }
        yield Fakes(slack, pagerduty, datadog, env)


# ----------------------------------------------------------------------------- the sender


def send_storm(
    url: str, skeletons: list[tuple[float, dict[str, Any]]], start: float, out: str
) -> None:
    """The sender, in a process of its own (`multiprocessing`, spawn): the fakes' threads in
    the parent would otherwise share its GIL and show up as ack latency.

    Sends each delivery at `start` (time.time()) + its offset, whatever the service does
    (open loop), and writes one record per delivery to `out` as JSON."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    bodies = []
    for at, data in skeletons:
        # Datadog's dates: when the transition happened, just before it is delivered.
        stamp = str(int((start + at) * 1000))
        dated = {**data, "date": stamp, "last_updated": stamp}
        bodies.append((at, dated["id"], json.dumps(dated).encode()))
    records = asyncio.run(_send_all(url, bodies, start))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"records": records, "cpu_s": usage.ru_utime + usage.ru_stime}
    Path(out).write_text(json.dumps(result), encoding="utf-8")


async def _send_all(
    url: str, bodies: list[tuple[float, str, bytes]], start: float
) -> list[dict[str, Any]]:
    import aiohttp

    headers = {"Content-Type": "application/json", "X-Responder-Token": TOKEN}
    clock = time.perf_counter  # uvloop's own clock has a resolution of 1 ms
    origin = clock() + (start - time.time())
    records: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=SENDER_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:

        async def one(delivery_id: str, due: float, body: bytes) -> None:
            record: dict[str, Any] = {"id": delivery_id, "status": None}
            records.append(record)
            record["lag_s"] = clock() - due
            try:
                async with http.post(url, data=body) as answer:
                    await answer.read()
                    record["status"] = answer.status
            except Exception as exc:  # every failure is a figure of the run
                record["error"] = type(exc).__name__
            # Latency from the time the delivery was due: waiting in this client counts too.
            record["latency_s"] = clock() - due
            record["answered_at"] = time.time()

        tasks = set()
        for at, delivery_id, body in bodies:
            due = origin + at
            if (wait := due - clock()) > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(delivery_id, due, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT_S + 5)
    return records


# ----------------------------------------------------------------------------- the database


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """The service's database URL: a new SQLite file, or a new PostgreSQL database
    responder_storm_<pid> dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/storm.db"
        return
    name = f"responder_storm_{os.getpid()}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise BenchError(f"PostgreSQL not reachable at {PG_SERVER}: {exc.orig}") from None
    try:
        yield sa.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a service we had to SIGKILL may still hold connections for a moment.
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def reader(url: str) -> sa.Engine:
    """A read-only engine on the service's database: the bench only looks."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sa.create_engine(f"sqlite:///file:{parsed.database}?mode=ro&uri=true")
    return sa.create_engine(
        url, connect_args={"options": "-c default_transaction_read_only=on"}, pool_size=1
    )


def scalar(conn: sa.Connection, sql: str) -> int:
    return int(conn.execute(sa.text(sql)).scalar() or 0)


def counts(conn: sa.Connection, sql: str) -> dict[str, int]:
    """`SELECT key, count(*) ... GROUP BY key` as a dict."""
    return {str(key): int(n) for key, n in conn.execute(sa.text(sql)).all()}


@dataclass(frozen=True, slots=True)
class Backlog:
    at: float  # time.time()
    events_waiting: int  # alert_event still 'received'
    runs_open: int  # action_run 'pending' or 'running'
    runs_done: int  # action_run in a final state

    @property
    def settled(self) -> bool:
        return self.events_waiting == 0 and self.runs_open == 0


def backlog(engine: sa.Engine) -> Backlog:
    with engine.connect() as conn:
        runs = counts(conn, "SELECT state, count(*) FROM action_run GROUP BY state")
        waiting = scalar(conn, "SELECT count(*) FROM alert_event WHERE state = 'received'")
    open_runs = runs.get("pending", 0) + runs.get("running", 0)
    return Backlog(time.time(), waiting, open_runs, sum(runs.values()) - open_runs)


def wait_settled(engine: sa.Engine, since: float, limit: float, label: str) -> dict[str, Any]:
    """Poll until no event waits and no run is pending or running (twice in a row, so that a
    follow-up written just after its parent finished is not missed), or `limit` seconds."""
    samples: list[Backlog] = []
    settled_at: float | None = None
    next_note = time.time() + 15
    while time.time() - since < limit:
        sample = backlog(engine)
        samples.append(sample)
        if sample.settled:
            if settled_at is not None:
                break
            settled_at = sample.at
        else:
            settled_at = None
        if time.time() >= next_note:
            print(
                f"  [{label}] +{sample.at - since:.0f} s after the last alert: "
                f"{sample.events_waiting} events waiting, {sample.runs_open} runs open, "
                f"{sample.runs_done} done",
                flush=True,
            )
            next_note += 15
        time.sleep(0.5)
    last = samples[-1] if samples else backlog(engine)
    out: dict[str, Any] = {
        "settled": settled_at is not None,
        "settle_s": round(settled_at - since, 1) if settled_at is not None else None,
        "events_waiting_left": last.events_waiting,
        "runs_open_left": last.runs_open,
    }
    if settled_at is None:
        out.update(drain_projection(samples))
    return out


def drain_projection(samples: Sequence[Backlog]) -> dict[str, Any]:
    """When it did not settle: how fast runs were finishing over the last minute of the wait,
    and how long the rest would take at that rate (a rough figure, for the reader)."""
    if len(samples) < 2:
        return {}
    last = samples[-1]
    first = next((s for s in samples if s.at >= last.at - 60), samples[0])
    span = last.at - first.at
    rate = (last.runs_done - first.runs_done) / span if span > 0 else 0.0
    more = last.runs_open / rate if rate > 0 else None
    return {
        "runs_done_per_s_last_minute": round(rate, 2),
        "projected_more_s": None if more is None else round(more),
    }


def database_figures(engine: sa.Engine) -> dict[str, Any]:
    """What the service stored: events, incidents, runs and audit rows."""
    with engine.connect() as conn:
        events = counts(conn, "SELECT state, count(*) FROM alert_event GROUP BY state")
        transitions = counts(conn, "SELECT transition, count(*) FROM alert_event GROUP BY 1")
        stored_ids = {
            str(v) for (v,) in conn.execute(sa.text("SELECT source_id FROM alert_event")).all()
        }
        incidents = counts(conn, "SELECT status, count(*) FROM incident GROUP BY status")
        by_service = counts(conn, "SELECT service, count(*) FROM incident GROUP BY service")
        runs = conn.execute(
            sa.text("SELECT action, state, count(*) FROM action_run GROUP BY action, state")
        ).all()
        attempts = scalar(conn, "SELECT coalesce(sum(attempts), 0) FROM action_run")
        audit = counts(conn, "SELECT kind, count(*) FROM audit_entry GROUP BY kind")
        finals = ", ".join(f"'{k}'" for k in FINAL_RUN_KINDS)
        # A run held back as it was planned (storm mode) ends with its `run.suppressed` row.
        runs_with_final = scalar(
            conn,
            "SELECT count(DISTINCT a.run_id) FROM audit_entry a"
            " JOIN action_run r ON r.id = a.run_id"
            f" WHERE a.kind IN ({finals})"
            " OR (a.kind = 'run.suppressed' AND r.state = 'cancelled')",
        )
        runs_with_audit = scalar(
            conn, "SELECT count(DISTINCT run_id) FROM audit_entry WHERE run_id IS NOT NULL"
        )
    run_table: dict[str, dict[str, int]] = defaultdict(dict)
    for action, state, n in runs:
        run_table[str(action)][str(state)] = int(n)
    return {
        "events": events,
        "transitions": transitions,
        "stored_ids": stored_ids,
        "incidents": incidents,
        "incidents_by_service": by_service,
        "runs": dict(run_table),
        "run_attempts": attempts,
        "audit": audit,
        "runs_with_final_audit": runs_with_final,
        "runs_with_audit": runs_with_audit,
    }


def audit_checks(db: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit log against what was received and done: (what, audit rows, expected)."""
    audit, events = db["audit"], db["events"]
    runs_by_state: Counter[str] = Counter()
    for states in db["runs"].values():
        runs_by_state.update(states)
    total_runs = sum(runs_by_state.values())
    passed_stages = (
        sum(events.values())
        - events.get("received", 0)
        - events.get("failed", 0)
        - audit.get("event.ignored", 0)
    )
    rows = [
        (
            "event.received rows = events taken from the queue",
            audit.get("event.received", 0),
            sum(events.values()) - events.get("received", 0),
        ),
        (
            "incident.opened rows = incidents",
            audit.get("incident.opened", 0),
            sum(db["incidents"].values()),
        ),
        (
            "incident.resolved rows = incidents resolved",
            audit.get("incident.resolved", 0),
            db["incidents"].get("resolved", 0),
        ),
        (
            "playbooks.matched rows = events not ignored",
            audit.get("playbooks.matched", 0),
            passed_stages,
        ),
        ("runs with audit rows = action runs", db["runs_with_audit"], total_runs),
        (
            "runs with a final outcome row = runs finished",
            db["runs_with_final_audit"],
            sum(runs_by_state[s] for s in FINAL_RUN_STATES),
        ),
    ]
    return [{"check": c, "audit": a, "expected": e, "ok": a == e} for c, a, e in rows]


def verify_audit(env: dict[str, str], log: Path) -> str:
    """`responder audit verify` on the stored log: the hash chain intact?"""
    try:
        run_checked([RESPONDER, "audit", "verify"], env, log, timeout=300)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        return f"FAILED: {exc}"
    lines = [ln for ln in tail(log, 3).splitlines() if "audit log" in ln]
    return lines[-1] if lines else "ok"


# ----------------------------------------------------------------------------- figures


def peak_per_second(times: list[float]) -> int:
    """The most calls within any one-second window (sliding, not clock-aligned buckets)."""
    times = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def slack_figures(slack: StormSlack) -> dict[str, Any]:
    calls = slack.log.calls
    names = {cid: f"#{name}" for name, cid in slack.channels.items()}
    posts: dict[str, list[float]] = defaultdict(list)
    chat: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        if call.channel is None or not call.route.startswith("chat."):
            continue
        channel = names.get(call.channel, call.channel)
        chat[channel].append(call.at)
        if call.route == "chat.postMessage":
            posts[channel].append(call.at)
    per_channel = {
        channel: {
            "posts": len(posts.get(channel, [])),
            "chat_calls": len(times),
            "peak_posts_per_s": peak_per_second(posts.get(channel, [])),
            "peak_chat_calls_per_s": peak_per_second(times),
        }
        for channel, times in sorted(chat.items())
    }
    roots = slack.root_messages()
    return {
        "calls": dict(Counter(f"{c.route} {c.status}" for c in calls)),
        "errors": dict(Counter(c.error for c in calls if c.error)),
        "http_429": sum(1 for c in calls if c.status == 429),
        "channels": per_channel,
        "peak_posts_per_channel_s": max(
            (v["peak_posts_per_s"] for v in per_channel.values()), default=0
        ),
        "peak_chat_calls_per_channel_s": max(
            (v["peak_chat_calls_per_s"] for v in per_channel.values()), default=0
        ),
        "root_messages": len(roots),
        "messages": sum(len(slack.messages(cid)) for cid in slack.channels.values()),
    }


def pagerduty_figures(pagerduty: StormPagerDuty) -> dict[str, Any]:
    events = pagerduty.events()
    triggers = [e for e in events if e.action == "trigger"]
    return {
        "calls": dict(Counter(f"{c.route} {c.status}" for c in pagerduty.log.calls)),
        "http_429": sum(1 for c in pagerduty.log.calls if c.status == 429),
        # A page is a PagerDuty alert opened: a trigger with a dedup key not already open.
        "pages": len({(e.routing_key, e.dedup_key) for e in triggers if e.outcome == "opened"}),
        "triggers": len(triggers),
        "triggers_deduplicated": sum(1 for e in triggers if e.outcome == "deduplicated"),
        "events": dict(Counter(f"{e.action}:{e.outcome}" for e in events)),
        "alerts_left_open": len(pagerduty.open_alerts()),
    }


def datadog_figures(datadog: StormDatadog) -> dict[str, Any]:
    return {
        "calls": dict(Counter(f"{c.route} {c.status}" for c in datadog.log.calls)),
        "http_429": sum(1 for c in datadog.log.calls if c.status == 429),
        "incidents": len(datadog.incidents()),
        "incidents_unresolved": sum(1 for i in datadog.incidents() if i.state != "resolved"),
        "notebooks": len(datadog.notebooks()),
        "workflow_instances": len(datadog.instances()),
    }


def ack_figures(records: list[dict[str, Any]], plan: StormPlan) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == 202]
    latencies = sorted(r["latency_s"] * 1000 for r in ok)
    lags = [r["lag_s"] * 1000 for r in records]
    answered = [r["answered_at"] for r in records if r.get("answered_at")]
    span = (max(answered) - min(answered)) if len(answered) > 1 else plan.seconds

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "sent": len(records),
        "statuses": dict(Counter(str(r["status"]) for r in records if r["status"] is not None)),
        "errors": dict(Counter(r["error"] for r in records if r.get("error"))),
        "non202": sum(1 for r in records if r["status"] != 202),
        "offered_per_s": round(len(plan.deliveries) / plan.seconds, 1),
        "acks_per_s": round(len(ok) / max(span, 1e-9), 1),
        "ack_p50_ms": ms(pct(latencies, 50)),
        "ack_p99_ms": ms(pct(latencies, 99)),
        "ack_max_ms": ms(latencies[-1] if latencies else None),
        "send_lag_p99_ms": ms(pct(lags, 99)),
        "last_ack_at": max(answered) if answered else time.time(),
    }


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


# ----------------------------------------------------------------------------- one database


@dataclass
class Options:
    alerts: int
    seconds: float
    settle_limit: float
    seed: int
    logs: Path
    idle_wait: float  # seconds to wait for a quiet machine before each database


@dataclass
class Clock:
    """CPU seconds of the service, PostgreSQL and this process, and the machine's busy time."""

    service: float
    postgres: float
    bench: float
    host: float
    at: float = field(default_factory=time.time)


def clock(pid: int, database_name: str | None) -> Clock:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Clock(
        cpu_seconds(pid),
        postgres_cpu(database_name),
        usage.ru_utime + usage.ru_stime,
        host_busy_seconds(),
    )


def postgres_cpu(database_name: str | None) -> float:
    """CPU seconds of the PostgreSQL backends serving `database_name` (from /proc).

    Only our database's backends: the server is shared (other checkouts run their tests on
    it), and its background writers, shared by all, are left out too."""
    if database_name is None:
        return 0.0
    title = re.compile(rb"^postgres: .*? " + re.escape(database_name.encode()) + rb" ")
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            if raw[raw.index("(") + 1 : raw.rindex(")")] != "postgres":
                continue
            if not title.match((stat.parent / "cmdline").read_bytes()):
                continue
        except OSError:
            continue  # the process ended while we looked
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_sender(url: str, plan: StormPlan, out: Path) -> tuple[Any, float]:
    """The sender process and the storm's start (time.time()), a little ahead so that the
    sender has built its bodies by then."""
    skeletons = [(d.at, payload(d)) for d in plan.deliveries]
    start = time.time() + 3.0 + len(skeletons) / 20_000
    spawn = multiprocessing.get_context("spawn")
    proc = spawn.Process(target=send_storm, args=(url, skeletons, start, str(out)), daemon=True)
    proc.start()
    return proc, start


def storm_on(kind: str, plan: StormPlan, opts: Options) -> dict[str, Any]:
    label = f"storm-{kind}"
    log = opts.logs / f"{label}.log"
    with (
        tempfile.TemporaryDirectory(prefix="responder-storm-") as tmp,
        database(kind, Path(tmp)) as url,
        vendor_fakes(PLAYBOOKS) as fakes,
    ):
        env = service_env(url, **fakes.env, RESPONDER_PLAYBOOKS=str(PLAYBOOKS))
        if kind == "postgres":  # `serve` migrates SQLite by itself, PostgreSQL never
            run_checked([RESPONDER, "db", "upgrade"], env, log, timeout=120)
        port = free_port()
        server = Server(label, serve_argv(port), env, port, log)
        with running(server):
            figures = storm_against(server, url, plan, opts, label)
        # Read once the service has stopped: what it left, as `audit verify` sees it too.
        engine = reader(url)
        try:
            db = database_figures(engine)
        finally:
            engine.dispose()
        figures.update(lost=len(figures.pop("acked_ids") - db.pop("stored_ids")), db=db)
        figures["audit_checks"] = audit_checks(db)
        figures["audit_verify"] = verify_audit(env, log)
        dump_calls(fakes, opts.logs / f"{label}-vendor-calls.jsonl")
        figures["slack"] = slack_figures(fakes.slack)
        figures["pagerduty"] = pagerduty_figures(fakes.pagerduty)
        figures["datadog"] = datadog_figures(fakes.datadog)
    return figures


def storm_against(
    server: Server, url: str, plan: StormPlan, opts: Options, label: str
) -> dict[str, Any]:
    """Send the storm, wait for the service to settle, and read what it did."""
    assert server.proc is not None
    pid = server.proc.pid
    parsed = sa.make_url(url)
    pg_name = None if parsed.get_backend_name() == "sqlite" else parsed.database
    engine = reader(url)
    try:
        out = opts.logs / f"{label}-acks.json"
        # Other work on the two cores skews every figure: start in a quiet moment if one
        # comes within the wait, and say how busy the machine was.
        busy = wait_for_idle(opts.idle_wait) if opts.idle_wait else None
        load1 = round(os.getloadavg()[0], 2)
        proc, start = start_sender(server.base + WEBHOOK, plan, out)
        time.sleep(max(0.0, start - time.time()))
        before = clock(pid, pg_name)
        # While it storms: the backlog once a second (its peak) and that the service lives.
        peak = Backlog(time.time(), 0, 0, 0)
        while proc.is_alive():
            proc.join(timeout=1.0)
            sample = backlog(engine)
            peak = Backlog(
                sample.at,
                max(peak.events_waiting, sample.events_waiting),
                max(peak.runs_open, sample.runs_open),
                sample.runs_done,
            )
            if not server.alive():
                raise BenchError(f"{label}: the service died during the storm")
        sent = json.loads(out.read_text(encoding="utf-8"))
        acks = ack_figures(sent["records"], plan)
        storm_end = clock(pid, pg_name)
        print(f"  [{label}] storm sent; waiting for the service to settle ...", flush=True)
        settle = wait_settled(engine, acks["last_ack_at"], opts.settle_limit, label)
        end = clock(pid, pg_name)
        memory = memory_kb(pid)
    finally:
        engine.dispose()
    deliveries = len(plan.deliveries)
    return {
        "database": "PostgreSQL" if "postgres" in label else "SQLite",
        "loadavg_1m_at_start": load1,
        "machine_busy_at_start_pct": busy,
        "deliveries": deliveries,
        "acks": {k: v for k, v in acks.items() if k != "last_ack_at"},
        "acked_ids": {r["id"] for r in sent["records"] if r["status"] == 202},
        "peak_events_waiting": peak.events_waiting,
        "peak_runs_open": peak.runs_open,
        **settle,
        "peak_memory_mb": round(memory.get("VmHWM", 0) / 1024, 1),
        "rss_end_mb": round(memory.get("VmRSS", 0) / 1024, 1),
        "cpu": cpu_report(before, storm_end, end, deliveries, sent["cpu_s"], pg_name),
    }


def cpu_report(
    before: Clock,
    storm_end: Clock,
    end: Clock,
    deliveries: int,
    sender_cpu: float,
    pg_name: str | None,
) -> dict[str, Any]:
    """CPU per delivery of the service (intake and processing) and of its PostgreSQL backends:
    over the storm alone, and from the storm's start until it settled (or the wait ended);
    and how the two cores were shared during the storm, in % of one core."""
    storm_s = storm_end.at - before.at

    def per_delivery(last: Clock, name: str) -> int:
        spent = float(getattr(last, name)) - float(getattr(before, name))
        return round(spent / deliveries * 1e6)

    def core_pct(name: str) -> float:
        spent = float(getattr(storm_end, name)) - float(getattr(before, name))
        return round(100 * spent / storm_s, 1)

    shares: dict[str, float | None] = {
        "service": core_pct("service"),
        "postgres": core_pct("postgres") if pg_name else None,
        "sender": round(100 * sender_cpu / storm_s, 1),
        "fakes": core_pct("bench"),  # this process: the fakes and the backlog polling
    }
    ours = sum(v for v in shares.values() if v is not None)
    machine = core_pct("host")
    # The rest of the machine: other programs, and kernel threads (SQLite's fsync partly).
    shares.update(machine=machine, other=round(max(0.0, machine - ours), 1))
    return {
        "service_s": round(end.service - before.service, 2),
        "storm_us_per_delivery": per_delivery(storm_end, "service"),
        "us_per_delivery": per_delivery(end, "service"),
        "postgres_storm_us_per_delivery": per_delivery(storm_end, "postgres") if pg_name else None,
        "postgres_us_per_delivery": per_delivery(end, "postgres") if pg_name else None,
        "storm_pct": shares,
    }


def dump_calls(fakes: Fakes, path: Path) -> None:
    """Every call the fakes answered, one JSON line each, for a closer look after the run."""
    with path.open("w", encoding="utf-8") as out:
        for vendor, log in (
            ("slack", fakes.slack.log),
            ("pagerduty", fakes.pagerduty.log),
            ("datadog", fakes.datadog.log),
        ):
            for call in log.calls:
                row = {"vendor": vendor, "at": call.at, "route": call.route}
                row.update(status=call.status, channel=call.channel, error=call.error)
                out.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------- report


def verdicts(figures: dict[str, Any], plan: StormPlan) -> list[dict[str, Any]]:
    acks, slack, pages = figures["acks"], figures["slack"], figures["pagerduty"]["pages"]
    affected = plan.count("services")
    lost_any = acks["non202"] + figures["lost"]
    p99 = acks["ack_p99_ms"]
    settle = figures["settle_s"]
    return [
        {
            "target": "zero alerts lost (every delivery 202 and stored)",
            "value": f"{lost_any} lost ({acks['non202']} not 202, {figures['lost']} acked "
            "but not stored)",
            "pass": lost_any == 0,
        },
        {
            "target": f"pages <= services affected ({affected})",
            "value": f"{pages} pages",
            "pass": pages <= affected,
        },
        {
            "target": "no 429 from the Slack fake",
            "value": f"{slack['http_429']} x 429",
            "pass": slack["http_429"] == 0,
        },
        {
            "target": f"p99 ack < {MAX_ACK_P99_MS:.0f} ms during the storm",
            "value": f"{p99} ms",
            "pass": p99 is not None and p99 < MAX_ACK_P99_MS,
        },
        {
            "target": f"settled within {MAX_SETTLE_S:.0f} s of the last alert",
            "value": f"{settle} s"
            if settle is not None
            else f"not settled after {figures['settle_limit_s']:.0f} s",
            "pass": settle is not None and settle <= MAX_SETTLE_S,
        },
    ]


def row(name: str, value: Any) -> None:
    print(f"  {name:<46} {value}")


def print_figures(f: dict[str, Any], plan: StormPlan) -> None:
    acks, cpu, sl, pd, dd = f["acks"], f["cpu"], f["slack"], f["pagerduty"], f["datadog"]
    print(
        f"\n== storm on {f['database']} (load average {f['loadavg_1m_at_start']}, machine "
        f"busy {f['machine_busy_at_start_pct']}% of a core at start) =="
    )
    row(
        "deliveries sent",
        f"{acks['sent']} ({plan.alerts} alerts + {plan.cycles} recoveries)"
        f" over {plan.seconds:.0f} s = {acks['offered_per_s']}/s offered",
    )
    row(
        "answers",
        " ".join(f"{k}:{v}" for k, v in sorted(acks["statuses"].items()))
        + "".join(f" {k}:{v}" for k, v in acks["errors"].items()),
    )
    row("acks per second (202, first to last answer)", acks["acks_per_s"])
    row(
        "ack latency p50 / p99 / max (ms)",
        f"{acks['ack_p50_ms']} / {acks['ack_p99_ms']} / {acks['ack_max_ms']}"
        f"  (sender lag p99 {acks['send_lag_p99_ms']} ms)",
    )
    row("lost (acked, not in alert_event)", f["lost"])
    row(
        "backlog peak during the storm",
        f"{f['peak_events_waiting']} events waiting, {f['peak_runs_open']} runs open",
    )
    settle = (
        f"{f['settle_s']} s"
        if f["settled"]
        else f"NOT settled after {f['settle_limit_s']:.0f} s: {f['events_waiting_left']} events "
        f"waiting, {f['runs_open_left']} runs open; finishing "
        f"{f.get('runs_done_per_s_last_minute')} runs/s, ~{f.get('projected_more_s')} s more"
    )
    row("last alert -> everything settled", settle)
    incidents = f["db"]["incidents"]
    row(
        "incidents opened",
        f"{sum(incidents.values())} (still open: "
        f"{sum(v for k, v in incidents.items() if k != 'resolved')}; events ignored as late: "
        f"{f['db']['audit'].get('event.ignored', 0)})",
    )
    row(
        "pages (PagerDuty alerts opened)",
        f"{pd['pages']} from {pd['triggers']} triggers "
        f"({pd['triggers_deduplicated']} deduplicated); services affected "
        f"{plan.count('services')}; left open {pd['alerts_left_open']}",
    )
    row(
        "Slack peak posts per channel per second",
        f"{sl['peak_posts_per_channel_s']} "
        f"(all chat.* calls: {sl['peak_chat_calls_per_channel_s']})",
    )
    for channel, c in sl["channels"].items():
        row(
            f"  {channel}",
            f"{c['posts']} posts, {c['chat_calls']} chat calls, peak "
            f"{c['peak_posts_per_s']} posts/s, {c['peak_chat_calls_per_s']} calls/s",
        )
    row(
        "429s answered by the fakes",
        f"Slack {sl['http_429']}, PagerDuty {pd['http_429']}, Datadog {dd['http_429']}",
    )
    row(
        "Datadog",
        f"{dd['incidents']} incidents ({dd['incidents_unresolved']} unresolved), "
        f"{dd['notebooks']} notebooks, {dd['workflow_instances']} workflow runs",
    )
    row("peak memory (VmHWM)", f"{f['peak_memory_mb']} MB (RSS at the end {f['rss_end_mb']} MB)")
    pg = cpu["postgres_us_per_delivery"]
    row(
        "service CPU per delivery (intake + processing)",
        f"{cpu['storm_us_per_delivery']} us during the storm, {cpu['us_per_delivery']} us "
        f"until settled ({cpu['service_s']} s)"
        + ("" if pg is None else f"; PostgreSQL backends {pg} us more"),
    )
    shares = cpu["storm_pct"]
    row(
        "CPU during the storm, % of one core (of 200)",
        ", ".join(f"{k} {v}" for k, v in shares.items() if v is not None),
    )
    if shares["other"] > NOISY_OTHER_PCT:
        print(
            f"  WARNING: other processes used {shares['other']:.0f}% of a core during the "
            "storm: the machine was not idle, and latency and settle figures suffer for it"
        )
    runs = f["db"]["runs"]
    row(
        "action runs",
        "; ".join(
            f"{action} " + " ".join(f"{s}:{n}" for s, n in sorted(states.items()))
            for action, states in sorted(runs.items())
        ),
    )
    audit = f["db"]["audit"]
    row(
        "audit rows",
        f"{sum(audit.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(audit.items())),
    )
    for check in f["audit_checks"]:
        mark = "ok" if check["ok"] else "MISMATCH"
        row(f"  {check['check']}", f"{check['audit']} vs {check['expected']} {mark}")
    row("audit verify", f["audit_verify"])
    print("  targets:")
    for v in f["verdicts"]:
        print(f"    {'PASS' if v['pass'] else 'FAIL'}  {v['target']}: {v['value']}")


def print_targets(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print("\n== targets ==")
    print(f"  {'target':<52}" + "".join(f"{n:>12}" for n in names))
    for i, v in enumerate(next(iter(results.values()))["verdicts"]):
        marks = ["PASS" if r["verdicts"][i]["pass"] else "FAIL" for r in results.values()]
        print(f"  {v['target']:<52}" + "".join(f"{m:>12}" for m in marks))


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--alerts", type=int, help="non-recovery deliveries (default 10,000)")
    parser.add_argument("--seconds", type=float, help="length of the storm (default 60)")
    parser.add_argument("--quick", action="store_true", help="1,000 alerts over 10 s")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        help="seconds to wait for the service to settle after the last alert "
        "(default 600, 180 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--no-idle-wait",
        action="store_true",
        help="start at once instead of waiting (up to 60 s) for a quiet machine",
    )
    args = parser.parse_args()
    opts = Options(
        alerts=args.alerts or (1000 if args.quick else 10_000),
        seconds=args.seconds or (10.0 if args.quick else 60.0),
        settle_limit=args.settle_timeout or (180.0 if args.quick else 600.0),
        seed=args.seed,
        logs=RESULTS / f"storm-{time.strftime('%Y%m%d-%H%M%S')}",
        idle_wait=0.0 if args.no_idle_wait else (20.0 if args.quick else 60.0),
    )
    opts.logs.mkdir(parents=True, exist_ok=True)
    plan = build_plan(opts.alerts, opts.seconds, opts.seed)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(
        f"storm: {plan.alerts} alerts + {plan.cycles} recoveries from {plan.count('monitors')} "
        f"monitors on {plan.count('hosts')} hosts of {plan.count('services')} services over "
        f"{plan.seconds:.0f} s (seed {plan.seed}, min gap per scope {plan.min_gap_s:.2f} s); "
        f"{os.cpu_count()} cores shared by the service, PostgreSQL, the sender and the fakes; "
        f"logs in {opts.logs}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for kind in kinds:
        print(f"\n>> {kind}: storming ...", flush=True)
        try:
            figures = storm_on(kind, plan, opts)
        except (BenchError, OSError, subprocess.SubprocessError, sa.exc.SQLAlchemyError) as exc:
            errors[kind] = f"{type(exc).__name__}: {exc}"
            print(f"!! {kind} failed: {errors[kind]}", flush=True)
            continue
        figures["settle_limit_s"] = opts.settle_limit
        figures["verdicts"] = verdicts(figures, plan)
        results[kind] = figures
        print_figures(figures, plan)
    if results:
        print_targets(results)
    for kind, error in errors.items():
        print(f"ERROR {kind}: {error}")
    summary = {
        "plan": {
            "alerts": plan.alerts,
            "recoveries": plan.cycles,
            "seconds": plan.seconds,
            "seed": plan.seed,
            "monitors": plan.count("monitors"),
            "hosts": plan.count("hosts"),
            "services": plan.count("services"),
            "cores": os.cpu_count(),
        },
        "results": results,
        "errors": errors,
        "logs": str(opts.logs),
    }
    (opts.logs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("STORM_SUMMARY " + json.dumps(summary, separators=(",", ":")), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
