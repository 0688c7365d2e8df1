"""Benchmark: durable webhook acknowledgement against a bare endpoint, then end to end.

    .venv/bin/python bench/run.py [--quick]

One run measures, one after another (the machine has 2 cores: never two servers at once):

  bare      bench/bare.py: Starlette + uvicorn + orjson, no storage (the ceiling)
  floor-*   bench/floor.py: the same plus group commit of the raw body, on SQLite and on
            PostgreSQL (what durability alone costs on this machine)
  sqlite    `responder serve` on a fresh SQLite file, the repo's playbooks, no Slack token
  postgres  `responder serve` on a fresh PostgreSQL database responder_bench_<pid>

each with open-loop load (bench/load.py) at 500, 1000 and 2000 webhooks/s and then
closed-loop saturation with wrk; then end to end: the service on SQLite posting to the Slack
fake (bench/slack_sink.py) at 200 webhooks/s, timing webhook sent -> Slack message received.
The last line is `BENCH_SUMMARY {json}`. Logs and the summary land in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOAD_PY = BENCH / "load.py"
PAYLOAD = BENCH / "webhook.json"  # one Datadog delivery; {{ID}} and {{TS}} vary per request
RESULTS = BENCH / "results"
PYTHON = sys.executable
RESPONDER = str(Path(PYTHON).with_name("responder"))
WEBHOOK = "/webhooks/datadog"
TOKEN = "bench-webhook-token"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")

RATES = (500, 1000, 2000)
WRK_THREADS, WRK_CONNECTIONS = 2, 64
E2E_RATE = 200

# Targets the service must meet (printed PASS/FAIL).
MIN_CLOSED_RATIO = 0.60  # durable ack closed-loop throughput vs the bare endpoint
MAX_P99_MS_AT_2000 = 10.0  # open-loop ack p99 at 2000 webhooks/s
MAX_E2E_P50_MS = 50.0  # webhook sent -> Slack root message received
# Issue 11: closed-loop acks as a share of the durable floor on the same database (the intake
# alone, then `serve` with its in-process worker), and serve's p99 at 2000/s against the floor's.
INTAKE_TARGETS = {
    "sqlite-no-worker": 0.80,
    "postgres-no-worker": 0.80,
    "sqlite": 0.50,
    "postgres": 0.50,
}
MAX_P99_VS_FLOOR = 3.0
IDLE_BUSY_PCT = 20.0  # machine CPU (% of a core) below which a target may start
NOISY_OTHER_PCT = 25.0  # CPU used by other processes during a phase (% of a core) worth a warning


class BenchError(Exception):
    pass


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads) from /proc, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; everything after its ')' is fixed-position.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17. Waited-for
    # children count too, should a server ever fork helpers.
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


# No proxy: an http_proxy in the caller's environment must not see loopback requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def host_busy_seconds() -> float:
    """CPU seconds the whole machine (all cores) spent busy since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already inside user).
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def client_cpu_seconds() -> float:
    """CPU of this script and its finished children: the load generator of a phase (load.py
    and wrk run as children; the end-to-end sender runs in this process)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def postgres_cpu_seconds() -> float:
    """CPU of the running PostgreSQL processes (postmaster and backends), from /proc.

    Backends that exit during a phase take their CPU with them; the bench's own connections
    live as long as its server, so the figure is close for the postgres target."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        if raw[raw.index("(") + 1 : raw.rindex(")")] != "postgres":
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


@dataclass(frozen=True, slots=True)
class Snapshot:
    server: float  # CPU seconds
    client: float
    database: float
    host: float
    at: float  # monotonic seconds


def snapshot(pids: list[int]) -> Snapshot:
    return Snapshot(
        sum(cpu_seconds(pid) for pid in pids),
        client_cpu_seconds(),
        postgres_cpu_seconds(),
        host_busy_seconds(),
        time.monotonic(),
    )


def cpu_figures(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU over a phase in % of one core: the server, the load generator, PostgreSQL, and
    everything else on the machine. A large `other` means the machine was busy with other
    work (or the kernel with I/O: fsync is done partly by kernel threads)."""
    wall = after.at - before.at

    def pct(name: str) -> float:
        return 100 * float(getattr(after, name) - getattr(before, name)) / wall

    server, client, database, host = (pct(n) for n in ("server", "client", "database", "host"))
    return {
        "cpu_pct": round(server, 1),
        "client_cpu_pct": round(client, 1),
        # Backends that exit mid-phase (other clients) can make the difference negative.
        "db_cpu_pct": round(max(0.0, database), 1),
        "host_cpu_pct": round(host, 1),
        "other_cpu_pct": round(max(0.0, host - server - client - max(0.0, database)), 1),
    }


def wait_for_idle(limit: float) -> float:
    """Wait (bounded) for a second in which the machine is nearly idle; returns the busy % of
    one core of the last second sampled. Other work's bursts would otherwise land in a phase."""
    deadline = time.monotonic() + limit
    while True:
        busy0, t0 = host_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = 100 * (host_busy_seconds() - busy0) / (time.monotonic() - t0)
        if busy < IDLE_BUSY_PCT or time.monotonic() >= deadline:
            return round(busy, 1)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@dataclass
class Server:
    """A server subprocess whose output goes to a log file; `stop` always kills it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    health: str | None = "/healthz"  # None: a TCP connect is enough (bare)
    proc: subprocess.Popen[bytes] | None = None
    # Processes that are part of the same service (the Procfile's worker): their CPU is the
    # server's, not "other" load on the machine.
    companions: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on run.py is ours to forward, in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} on start")
            if self._ready():
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not ready within {timeout:.0f} s")

    def _ready(self) -> bool:
        if self.health is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            return False
        try:
            status, _ = http_get(self.base + self.health, timeout=1.0)
        except OSError:
            return False
        return status == 200

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def snapshot(self) -> Snapshot:
        assert self.proc is not None
        live = [p.pid for p in self.companions if p.poll() is None]
        return snapshot([self.proc.pid, *live])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM first: uvicorn runs the lifespan shutdown (writer flush, worker stop).
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def spawn(argv: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    """A helper process of the run, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on run.py is ours to forward, in order
        )


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if it does not stop within `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    except BaseException:
        print(f"--- last 30 lines of {server.log}:\n{tail(server.log)}", file=sys.stderr)
        raise
    finally:
        server.stop()


def run_checked(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    with log.open("ab") as out:
        out.write(f"\n=== {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        print(f"--- last 30 lines of {log}:\n{tail(log)}", file=sys.stderr)
        raise BenchError(f"{' '.join(argv[-2:])} exited with {proc.returncode}")


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Nothing from the caller's shell may send the service to a real vendor or another DB,
    # nor through a proxy (slack_sdk honours HTTPS_PROXY; the Slack fake is on loopback).
    ours = ("RESPONDER_", "SLACK_", "DD_", "PAGERDUTY_")
    proxies = ("http_proxy", "https_proxy", "all_proxy")
    for name in list(env):
        if name.startswith(ours) or name == "PORT" or name.lower() in proxies:
            del env[name]
    env.update(
        DATABASE_URL=database_url,
        RESPONDER_PLAYBOOKS=str(REPO / "playbooks"),
        RESPONDER_WEBHOOK_TOKEN=TOKEN,
        # Without a token no Slack call is made; the URL is a dead loopback port regardless.
        RESPONDER_SLACK_API_URL="http://127.0.0.1:9/api/",
        RESPONDER_LOG_LEVEL="warning",  # per-event info logs would be measured as service cost
    )
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- metrics


def scrape(server: Server) -> dict[str, float]:
    """`/metrics` as {name{labels}: value}; empty when the endpoint is missing or broken."""
    try:
        status, text = http_get(server.base + "/metrics", timeout=2.0)
    except OSError:
        return {}
    if status != 200:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            values[name] = float(value)
    return values


def batch_mean(before: dict[str, float], after: dict[str, float]) -> float | None:
    """Mean events per group commit between two scrapes."""
    key = "responder_intake_batch_size"
    count = after.get(f"{key}_count", 0.0) - before.get(f"{key}_count", 0.0)
    total = after.get(f"{key}_sum", 0.0) - before.get(f"{key}_sum", 0.0)
    return round(total / count, 2) if count > 0 else None


def queue_depth(metrics: dict[str, float]) -> float | None:
    depths = [v for k, v in metrics.items() if k.startswith("responder_queue_depth{")]
    return sum(depths) if depths else None


def cpu_per_ack(before: Snapshot, after: Snapshot, acks: int) -> float | None:
    """Server CPU (every process of the target) per 202 over a phase, in microseconds."""
    return round(1e6 * (after.server - before.server) / acks, 1) if acks else None


def _delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def cpu_split(
    before: dict[str, float], after: dict[str, float], worker_cpu: float | None = None
) -> dict[str, float | None]:
    """CPU microseconds per alert for the intake (event loop + group-commit writer, per
    accepted webhook) and for processing (worker and action threads, per event processed),
    from the service's `responder_thread_cpu_seconds` between two scrapes. `worker_cpu`: the
    seconds of a separate worker process (Procfile shape), counted per accepted webhook."""
    accepted = _delta(before, after, 'responder_webhook_events_total{outcome="accepted"}')
    processed = sum(
        _delta(before, after, f'responder_events_processed_total{{result="{result}"}}')
        for result in ("processed", "failed")
    )
    intake = _delta(before, after, 'responder_thread_cpu_seconds_total{role="intake"}')
    pipeline = _delta(before, after, 'responder_thread_cpu_seconds_total{role="pipeline"}')
    if worker_cpu is not None:
        pipeline, processed = worker_cpu, accepted
    return {
        "intake_us_per_alert": round(1e6 * intake / accepted, 1) if accepted else None,
        "processing_us_per_alert": round(1e6 * pipeline / processed, 1) if processed else None,
    }


def settle(server: Server, limit: float) -> dict[str, Any]:
    """Wait (bounded) until the worker has caught up, so one phase's backlog does not eat the
    next phase's CPU. Reports the backlog when the load stopped and what was left after."""
    start = time.monotonic()
    time.sleep(0.6)  # the worker refreshes its queue gauges about every poll interval
    at_end = depth = queue_depth(scrape(server))
    while depth and time.monotonic() - start < limit:  # 0 or no gauge: nothing to wait on
        time.sleep(0.5)
        depth = queue_depth(scrape(server))
    return {
        "backlog": at_end,
        "backlog_left": depth,
        "settle_s": round(time.monotonic() - start, 1),
    }


# ----------------------------------------------------------------------------- load


def open_loop(server: Server, rate: int, duration: float, warmup: float) -> dict[str, Any]:
    """bench/load.py at a fixed arrival rate; its BENCH_JSON plus server CPU."""
    argv = [
        PYTHON,
        str(LOAD_PY),
        "--url",
        server.base + WEBHOOK,
        "--rate",
        str(rate),
        "--duration",
        str(duration + warmup),  # load.py's warmup is the first part of its duration
        "--warmup",
        str(warmup),
        "--token",
        TOKEN,
    ]
    before_metrics = scrape(server)
    cpu0 = server.snapshot()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + warmup + 40, check=False
    )
    cpu1 = server.snapshot()
    result = _bench_json(proc.stdout, "BENCH_JSON ")
    if result is None:
        raise BenchError(f"load.py gave no BENCH_JSON (rc {proc.returncode}): {proc.stderr[-800:]}")
    result.update(cpu_figures(cpu0, cpu1))
    result["cpu_us_per_ack"] = cpu_per_ack(cpu0, cpu1, result["statuses"].get("202", 0))
    result["batch_mean"] = batch_mean(before_metrics, scrape(server))
    if "WARNING" in proc.stderr:
        result["warning"] = proc.stderr.strip().splitlines()[-1]
    return result


def wrk_path() -> str | None:
    return shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)


def closed_loop(server: Server, wrk: str, duration: float) -> dict[str, Any]:
    """wrk at saturation with bench/post.lua (a unique id per request)."""
    nonce = str(int(time.time()) % 100_000_000)
    argv = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{duration:.0f}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "post.lua"),
        server.base + WEBHOOK,
        "--",
        str(PAYLOAD),
        TOKEN,
        nonce,
    ]
    before_metrics = scrape(server)
    cpu0 = server.snapshot()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    cpu1 = server.snapshot()
    data = _bench_json(proc.stdout, "WRK_JSON ")
    if data is None:
        raise BenchError(f"wrk gave no WRK_JSON (rc {proc.returncode}): {proc.stderr[-800:]}")
    seconds = data["duration_us"] / 1e6
    statuses = {k: v for k, v in data["statuses"].items()}
    rps_text = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    return {
        "tool": "wrk",
        "threads": WRK_THREADS,
        "connections": WRK_CONNECTIONS,
        "requests": data["requests"],
        "rps": float(rps_text.group(1)) if rps_text else round(data["requests"] / seconds, 1),
        # Only 202 counts as a durable ack; wrk's own "errors.status" counts >= 400 only.
        "ok202_rps": round(statuses.get("202", 0) / seconds, 1),
        "statuses": statuses,
        "non202": sum(v for k, v in statuses.items() if k != "202"),
        "errors": {k: v for k, v in data["errors"].items() if v},
        "p50_us": data["p50_us"],
        "p90_us": data["p90_us"],
        "p99_us": data["p99_us"],
        "max_us": data["max_us"],
        **cpu_figures(cpu0, cpu1),
        "cpu_us_per_ack": cpu_per_ack(cpu0, cpu1, statuses.get("202", 0)),
        "batch_mean": batch_mean(before_metrics, scrape(server)),
    }


def _bench_json(stdout: str, prefix: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            parsed: dict[str, Any] = json.loads(line[len(prefix) :])
            return parsed
    return None


@dataclass
class Plan:
    quick: bool
    measure: float = field(init=False)
    warmup: float = 2.0
    wrk_seconds: float = field(init=False)
    e2e_seconds: float = field(init=False)
    settle_limit: float = field(init=False)
    idle_wait: float = field(init=False)

    def __post_init__(self) -> None:
        self.measure = 4.0 if self.quick else 10.0
        self.wrk_seconds = 4.0 if self.quick else 10.0
        self.e2e_seconds = 4.0 if self.quick else 10.0
        self.settle_limit = 10.0 if self.quick else 30.0
        self.idle_wait = 20.0 if self.quick else 60.0


class Split:
    """Intake and processing CPU per alert from the start of a phase to the end of its
    settling (processing catches up after the load stops)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.metrics = scrape(server)
        self.companions = [cpu_seconds(p.pid) for p in server.companions if p.poll() is None]

    def done(self) -> dict[str, float | None]:
        worker = None
        if self.server.companions:
            now = [cpu_seconds(p.pid) for p in self.server.companions if p.poll() is None]
            worker = sum(now) - sum(self.companions) if len(now) == len(self.companions) else None
        return cpu_split(self.metrics, scrape(self.server), worker)


def measure_target(server: Server, plan: Plan, wrk: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"open": {}, "closed": None}
    is_service = server.health is not None
    for rate in RATES:
        busy = wait_for_idle(plan.idle_wait / 3) if plan.idle_wait else None
        print(f"  [{server.name}] open loop {rate}/s for {plan.measure:.0f} s ...", flush=True)
        split = Split(server) if is_service else None
        out["open"][str(rate)] = open_loop(server, rate, plan.measure, plan.warmup)
        out["open"][str(rate)]["busy_before_pct"] = busy
        if not server.alive():
            raise BenchError(f"{server.name} died during the {rate}/s phase")
        if split is not None:
            out["open"][str(rate)].update(settle(server, plan.settle_limit))
            out["open"][str(rate)].update(split.done())
    if wrk is None:
        print("  wrk not found: apt-get install wrk (closed-loop skipped)", flush=True)
    else:
        busy = wait_for_idle(plan.idle_wait / 3) if plan.idle_wait else None
        print(f"  [{server.name}] closed loop wrk for {plan.wrk_seconds:.0f} s ...", flush=True)
        split = Split(server) if is_service else None
        out["closed"] = closed_loop(server, wrk, plan.wrk_seconds)
        out["closed"]["busy_before_pct"] = busy
        if not server.alive():
            raise BenchError(f"{server.name} died during the closed-loop phase")
        if split is not None:
            out["closed"].update(settle(server, plan.settle_limit))
            out["closed"].update(split.done())
    if is_service:
        final = scrape(server)
        out["metrics_reachable"] = bool(final)
        # The whole target's group-commit histogram, as /metrics has it.
        out["intake_batch_metrics"] = {
            k: v
            for k, v in final.items()
            if k.startswith("responder_intake_batch_size") and "_created" not in k
        }
        out["intake_batch_mean"] = batch_mean({}, final)
    return out


# ----------------------------------------------------------------------------- targets


def bench_bare(plan: Plan, wrk: str | None, logs: Path) -> dict[str, Any]:
    port = free_port()
    server = Server(
        "bare",
        [PYTHON, str(BENCH / "bare.py"), "--port", str(port)],
        dict(os.environ),
        port,
        logs / "bare.log",
        health=None,
    )
    with running(server):
        return measure_target(server, plan, wrk)


def serve_argv(port: int, worker: bool = True) -> list[str]:
    argv = [RESPONDER, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return argv if worker else [*argv, "--no-worker"]


def bench_sqlite(plan: Plan, wrk: str | None, logs: Path, worker: bool = True) -> dict[str, Any]:
    name = "sqlite" if worker else "sqlite-no-worker"
    with tempfile.TemporaryDirectory(prefix="responder-bench-") as tmp:
        port = free_port()
        env = service_env(f"sqlite:///{tmp}/responder.db")
        server = Server(name, serve_argv(port, worker), env, port, logs / f"{name}.log")
        with running(server):
            return measure_target(server, plan, wrk)


@contextlib.contextmanager
def scratch_postgres(label: str) -> Iterator[str]:
    """A fresh database on the local server for one target, dropped afterwards; its URL."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"responder_bench_{label.replace('-', '_')}_{os.getpid()}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise BenchError(f"PostgreSQL not reachable at {PG_SERVER}: {exc.orig}") from None
    try:
        yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a server we had to SIGKILL may still hold connections for a moment.
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def bench_postgres(
    plan: Plan, wrk: str | None, logs: Path, worker: bool = True, procfile: bool = False
) -> dict[str, Any]:
    """`procfile`: the production shape, `serve --no-worker` beside a `responder worker`
    process (CPU% is then both processes together)."""
    label = "postgres-procfile" if procfile else "postgres" if worker else "postgres-no-worker"
    with scratch_postgres(label) as url:
        env = service_env(url)
        log = logs / f"{label}.log"
        run_checked([RESPONDER, "db", "upgrade"], env, log, timeout=120)
        port = free_port()
        server = Server(label, serve_argv(port, worker and not procfile), env, port, log)
        background = None
        if procfile:
            background = spawn([RESPONDER, "worker"], env, log)
            server.companions.append(background)
        try:
            with running(server):
                return measure_target(server, plan, wrk)
        finally:
            if background is not None:
                terminate(background, grace=15)


def bench_floor(plan: Plan, wrk: str | None, logs: Path, database: str) -> dict[str, Any]:
    """bench/floor.py: group commit of the raw body and nothing else (durability's own cost)."""
    label = f"floor-{database}"

    def measure(url: str) -> dict[str, Any]:
        port = free_port()
        argv = [PYTHON, str(BENCH / "floor.py"), "--port", str(port), "--database", url]
        server = Server(label, argv, dict(os.environ), port, logs / f"{label}.log", health=None)
        with running(server):
            return measure_target(server, plan, wrk)

    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="responder-bench-") as tmp:
            return measure(f"sqlite:///{tmp}/floor.db")
    with scratch_postgres(label) as url:
        return measure(url.replace("postgresql+psycopg://", "postgresql://", 1))


# ----------------------------------------------------------------------------- end to end

BENCH_TAG = re.compile(r"bench-e2e-(\d+)")


async def send_e2e(url: str, rate: int, seconds: float) -> dict[str, dict[str, Any]]:
    """Open-loop sender: one webhook every 1/rate s, each with its own id in the title.

    Returns {id: {"sent": wall time, "status": code or None, "ack_ms": ...}}."""
    import aiohttp

    template = PAYLOAD.read_text(encoding="utf-8").strip()
    nonce = f"{int(time.time()) % 100_000_000}{os.getpid() % 1000:03d}"
    total = int(rate * seconds)
    sent: dict[str, dict[str, Any]] = {}
    headers = {"Content-Type": "application/json", "X-Responder-Token": TOKEN}
    timeout = aiohttp.ClientTimeout(total=10)

    def body(eid: str) -> bytes:
        data = json.loads(
            template.replace("{{ID}}", eid).replace("{{TS}}", str(int(time.time() * 1000)))
        )
        # The Slack root post carries the alert title: the id in it matches post to webhook.
        data["title"] = f"{data['title']} bench-e2e-{eid}"
        return json.dumps(data).encode()

    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

        async def one(eid: str, payload: bytes) -> None:
            record: dict[str, Any] = {"sent": time.time(), "status": None}
            sent[eid] = record
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=payload) as resp:
                    await resp.read()
                    record["status"] = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                record["error"] = type(exc).__name__
            record["ack_ms"] = (time.perf_counter() - t0) * 1000

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            eid = f"{nonce}{i:06d}"
            payload = body(eid)  # built before the wait so it is not counted as latency
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(eid, payload)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return sent


def wait_count(count_file: Path, target: int, limit: float, idle: float = 10.0) -> int:
    """Wait until the sink holds `target` root posts, or nothing new came for `idle` s."""
    start = last_change = time.monotonic()
    last = -1
    while time.monotonic() - start < limit:
        with contextlib.suppress(OSError, ValueError):
            last_seen = int(count_file.read_text())
            if last_seen != last:
                last, last_change = last_seen, time.monotonic()
        if last >= target or time.monotonic() - last_change > idle:
            break
        time.sleep(0.1)
    return last


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile, the same rule as load.py."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[k]


def bench_e2e(plan: Plan, logs: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="responder-bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        ready, posts = tmp / "sink.json", logs / "e2e-slack-posts.jsonl"
        count_file = posts.with_suffix(posts.suffix + ".count")
        for stale in (posts, count_file):
            stale.unlink(missing_ok=True)
        sink_log = logs / "slack_sink.log"
        sink = spawn(
            [
                PYTHON,
                str(BENCH / "slack_sink.py"),
                "--ready-file",
                str(ready),
                "--out",
                str(posts),
                "--max-seconds",
                str(plan.e2e_seconds + 300),
            ],
            None,
            sink_log,
        )
        try:
            deadline = time.monotonic() + 20
            while not ready.exists():
                if sink.poll() is not None or time.monotonic() > deadline:
                    print(f"--- last 30 lines of {sink_log}:\n{tail(sink_log)}", file=sys.stderr)
                    raise BenchError("the Slack sink did not start")
                time.sleep(0.05)
            info = json.loads(ready.read_text())
            port = free_port()
            env = service_env(
                f"sqlite:///{tmp}/responder.db",
                SLACK_BOT_TOKEN=info["token"],
                RESPONDER_SLACK_API_URL=info["base_url"],
                # Every bench alert goes to one channel: paced at Slack's ~1/s, 2,000 posts
                # would take half an hour. The sink has no such limit, and this measures
                # our own latency, so pacing is off here (and on by default).
                RESPONDER_SLACK_CHANNEL_INTERVAL="0",
                # And each alert's own root message is what is timed: storm mode, which
                # would tell all but the first few in one summary, is off here too.
                RESPONDER_STORM_RATE="0",
            )
            server = Server("e2e", serve_argv(port), env, port, logs / "e2e.log")
            with running(server):
                before = scrape(server)
                cpu0, sink0 = server.snapshot(), cpu_seconds(sink.pid)
                print(
                    f"  [e2e] {E2E_RATE}/s for {plan.e2e_seconds:.0f} s into the Slack fake ...",
                    flush=True,
                )
                sent = asyncio.run(send_e2e(server.base + WEBHOOK, E2E_RATE, plan.e2e_seconds))
                accepted = sum(1 for r in sent.values() if r["status"] == 202)
                arrived = wait_count(count_file, accepted, limit=60.0)
                cpu1, sink1 = server.snapshot(), cpu_seconds(sink.pid)
                after = scrape(server)
        finally:
            terminate(sink, grace=20)
    latencies: list[float] = []
    matched = 0
    unmatched_posts = 0
    rows = posts.read_text().splitlines() if posts.exists() else []
    for line in rows:
        row = json.loads(line)
        found = BENCH_TAG.search(f"{row.get('text') or ''} {row.get('header') or ''}")
        record = sent.get(found.group(1)) if found else None
        if record is None or row.get("received_at") is None:
            unmatched_posts += 1
            continue
        matched += 1
        latencies.append((row["received_at"] - record["sent"]) * 1000)
    statuses: dict[str, int] = {}
    for record in sent.values():
        key = str(record["status"] if record["status"] is not None else record.get("error"))
        statuses[key] = statuses.get(key, 0) + 1
    acks = [r["ack_ms"] for r in sent.values() if r["status"] == 202]
    return {
        "rate": E2E_RATE,
        "sent": len(sent),
        "statuses": statuses,
        "accepted": accepted,
        "root_posts_seen": arrived,
        "reached_slack": matched,
        "unmatched_posts": unmatched_posts,
        "p50_ms": _round(pct(latencies, 50)),
        "p90_ms": _round(pct(latencies, 90)),
        "p99_ms": _round(pct(latencies, 99)),
        "max_ms": _round(max(latencies) if latencies else None),
        "ack_p50_ms": _round(pct(acks, 50)),
        "ack_p99_ms": _round(pct(acks, 99)),
        **cpu_figures(cpu0, cpu1),
        "sink_cpu_pct": round(100 * (sink1 - sink0) / (cpu1.at - cpu0.at), 1),
        "batch_mean": batch_mean(before, after),
        "posts_file": str(posts),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ----------------------------------------------------------------------------- report


def ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def status_text(statuses: dict[str, int], errors: dict[str, int]) -> str:
    parts = [f"{k}:{v}" for k, v in sorted(statuses.items())]
    parts += [f"{k}:{v}" for k, v in sorted(errors.items()) if v]
    return " ".join(parts) or "none"


def print_target(
    name: str, data: dict[str, Any], bare: dict[str, Any] | None, floor: dict[str, Any] | None
) -> None:
    print(
        f"\n== {name} (load average {data.get('loadavg_1m')}, "
        f"machine busy {fmt(data.get('busy_at_start_pct'))}% at start) =="
    )
    head = (
        f"{'phase':<11}{'offered/s':>10}{'achieved/s':>11}  {'statuses':<28}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'p99/bare':>9}{'CPU%':>7}{'load%':>7}{'pg%':>7}"
        f"{'other%':>7}{'batch':>7}"
        f"{'backlog':>14}{'us/ack':>8}{'intake':>8}{'process':>8}"
    )
    print(head)
    print("-" * len(head))
    rows: list[tuple[str, str, dict[str, Any], float | None]] = []
    for rate, r in data["open"].items():
        bare_p99 = ((bare or {}).get("open", {}).get(rate) or {}).get("lat_p99_us")
        ratio = r["lat_p99_us"] / bare_p99 if bare_p99 and r["lat_p99_us"] else None
        rows.append((f"open {rate}", f"{r['offered_rps']:.0f}", r, ratio))
    closed = data.get("closed")
    if closed:
        bare_p99 = ((bare or {}).get("closed") or {}).get("p99_us")
        ratio = closed["p99_us"] / bare_p99 if bare_p99 else None
        rows.append(("closed wrk", "-", closed, ratio))
    for label, offered, r, ratio in rows:
        state = status_text(r["statuses"], r["errors"])
        if r.get("dropped"):
            state += f" dropped:{r['dropped']}"
        p50 = r.get("lat_p50_us", r.get("p50_us"))
        p99 = r.get("lat_p99_us", r.get("p99_us"))
        # Worker queue when the load stopped -> after the bounded wait before the next phase.
        backlog = (
            f"{r['backlog']:.0f}->{fmt(r.get('backlog_left'), '.0f')}"
            if r.get("backlog") is not None
            else "-"
        )
        print(
            f"{label:<11}{offered:>10}{r['rps']:>11.1f}  {state:<28}"
            f"{ms(p50):>9}{ms(p99):>9}{fmt(ratio, '.2f'):>9}"
            f"{r['cpu_pct']:>7.1f}{fmt(r.get('client_cpu_pct'), '.1f'):>7}"
            f"{fmt(r.get('db_cpu_pct'), '.1f'):>7}{fmt(r.get('other_cpu_pct'), '.1f'):>7}"
            f"{fmt(r.get('batch_mean')):>7}{backlog:>14}"
            f"{fmt(r.get('cpu_us_per_ack'), '.0f'):>8}"
            f"{fmt(r.get('intake_us_per_alert'), '.0f'):>8}"
            f"{fmt(r.get('processing_us_per_alert'), '.0f'):>8}"
        )
    bare_rps = ((bare or {}).get("closed") or {}).get("ok202_rps")
    if closed and bare_rps and name != "bare":
        print(
            f"closed loop: {closed['ok202_rps']:.0f} acks/s (202) = "
            f"{100 * closed['ok202_rps'] / bare_rps:.0f}% of bare ({bare_rps:.0f}/s)"
        )
    floor_rps = ((floor or {}).get("closed") or {}).get("ok202_rps")
    if closed and floor_rps and floor is not data:
        print(
            f"            = {100 * closed['ok202_rps'] / floor_rps:.0f}% of the durable floor "
            f"on the same database ({floor_rps:.0f}/s)"
        )
    ratio = p99_ratio(data, floor) if floor is not data else None
    if ratio is not None:
        print(f"open loop 2000/s: p99 {ratio:.1f}x the durable floor's")
    if closed and closed.get("intake_us_per_alert") is not None:
        floor_us = ((floor or {}).get("closed") or {}).get("cpu_us_per_ack")
        print(
            f"CPU per alert, closed loop: intake {closed['intake_us_per_alert']:.0f} us, "
            f"processing {fmt(closed.get('processing_us_per_alert'), '.0f')} us "
            f"(durable floor: {fmt(floor_us, '.0f')} us per ack)"
        )
    lines = data.get("intake_batch_metrics") or {}
    if lines:
        print(f"/metrics, whole target (mean batch {fmt(data.get('intake_batch_mean'))}):")
        for key, value in lines.items():
            print(f"  {key} {value:g}")
    if data.get("metrics_reachable") is False:
        print("(/metrics not reachable: no batch sizes or backlog)")


def print_e2e(e2e: dict[str, Any]) -> None:
    print("\n== end to end: webhook sent -> Slack root message received (SQLite, Slack fake) ==")
    print(
        f"sent {e2e['sent']} at {e2e['rate']}/s, statuses {status_text(e2e['statuses'], {})}; "
        f"reached Slack {e2e['reached_slack']}/{e2e['sent']} "
        f"(unmatched posts {e2e['unmatched_posts']})"
    )
    print(
        f"latency ms: p50 {fmt(e2e['p50_ms'])} p90 {fmt(e2e['p90_ms'])} "
        f"p99 {fmt(e2e['p99_ms'])} max {fmt(e2e['max_ms'])}; "
        f"ack p50 {fmt(e2e['ack_p50_ms'])} p99 {fmt(e2e['ack_p99_ms'])}; "
        f"CPU {e2e['cpu_pct']}%, sender {e2e['client_cpu_pct']}%, "
        f"Slack sink {e2e['sink_cpu_pct']}%, rest of the machine "
        f"{max(0.0, e2e['other_cpu_pct'] - e2e['sink_cpu_pct']):.1f}%; "
        f"mean batch {fmt(e2e['batch_mean'])}"
    )


def floor_ratio(target: dict[str, Any] | None, floor: dict[str, Any] | None) -> float | None:
    """Closed-loop 202s per second as a share of the durable floor's on the same database."""
    rps = ((target or {}).get("closed") or {}).get("ok202_rps")
    floor_rps = ((floor or {}).get("closed") or {}).get("ok202_rps")
    return rps / floor_rps if rps is not None and floor_rps else None


def p99_ratio(target: dict[str, Any] | None, floor: dict[str, Any] | None) -> float | None:
    """Open-loop p99 at 2000/s divided by the floor's in the same phase."""
    r = ((target or {}).get("open") or {}).get("2000") or {}
    f = ((floor or {}).get("open") or {}).get("2000") or {}
    if not r.get("lat_p99_us") or not f.get("lat_p99_us"):
        return None
    return float(r["lat_p99_us"]) / float(f["lat_p99_us"])


def clean_at_2000(target: dict[str, Any] | None) -> bool:
    """No non-2xx answer, client error or dropped arrival in the 2000/s phase."""
    r = ((target or {}).get("open") or {}).get("2000") or {}
    return bool(r) and r.get("non2xx") == 0 and not r.get("errors") and not r.get("dropped")


def verdicts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    targets = summary["targets"]
    bare_rps = ((targets.get("bare") or {}).get("closed") or {}).get("ok202_rps")
    for db in ("sqlite", "postgres"):
        closed = (targets.get(db) or {}).get("closed") or {}
        ratio = closed["ok202_rps"] / bare_rps if bare_rps and closed else None
        out.append(
            {
                "check": f"{db}: closed-loop durable acks >= {MIN_CLOSED_RATIO:.0%} of bare",
                "value": None if ratio is None else round(ratio, 3),
                "pass": ratio is not None and ratio >= MIN_CLOSED_RATIO,
            }
        )
    for db in ("sqlite", "postgres"):
        r = ((targets.get(db) or {}).get("open") or {}).get("2000") or {}
        p99 = r.get("lat_p99_us")
        clean = bool(r) and r.get("non2xx") == 0 and not r.get("errors") and not r.get("dropped")
        out.append(
            {
                "check": f"{db}: open-loop p99 ack < {MAX_P99_MS_AT_2000:.0f} ms at 2000/s "
                "(and no failures)",
                "value": None if p99 is None else round(p99 / 1000, 2),
                "pass": p99 is not None and p99 / 1000 < MAX_P99_MS_AT_2000 and clean,
            }
        )
    for name, share in INTAKE_TARGETS.items():
        database = "postgres" if "postgres" in name else "sqlite"
        ratio = floor_ratio(targets.get(name), targets.get(f"floor-{database}"))
        out.append(
            {
                "check": f"{name}: closed-loop acks >= {share:.0%} of the durable floor",
                "value": None if ratio is None else round(ratio, 3),
                "pass": ratio is not None and ratio >= share,
            }
        )
    for db in ("sqlite", "postgres"):
        ratio = p99_ratio(targets.get(db), targets.get(f"floor-{db}"))
        out.append(
            {
                "check": f"{db}: open-loop p99 at 2000/s <= {MAX_P99_VS_FLOOR:.0f}x the floor's "
                "(and no failures)",
                "value": None if ratio is None else round(ratio, 2),
                "pass": ratio is not None
                and ratio <= MAX_P99_VS_FLOOR
                and clean_at_2000(targets.get(db)),
            }
        )
    e2e = summary.get("e2e") or {}
    p50 = e2e.get("p50_ms")
    out.append(
        {
            "check": f"end to end p50 < {MAX_E2E_P50_MS:.0f} ms (all alerts reaching Slack)",
            "value": p50,
            "pass": p50 is not None
            and p50 < MAX_E2E_P50_MS
            and e2e.get("reached_slack") == e2e.get("sent"),
        }
    )
    return out


# ----------------------------------------------------------------------------- main

DEFAULT_PARTS = (
    "bare",
    "floor-sqlite",
    "floor-postgres",
    "sqlite",
    "postgres",
    "sqlite-no-worker",
    "postgres-no-worker",
    "postgres-procfile",
    "e2e",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 s phases instead of 10 s")
    parser.add_argument(
        "--only",
        choices=DEFAULT_PARTS,
        action="append",
        help="run only these parts (repeatable); the default is all, in order",
    )
    parser.add_argument(
        "--no-worker-too",
        action="store_true",
        help="no effect: `serve --no-worker` (the intake alone) is part of every run now",
    )
    parser.add_argument(
        "--no-idle-wait",
        action="store_true",
        help="start each target at once instead of waiting (bounded) for a quiet machine",
    )
    args = parser.parse_args()
    plan = Plan(args.quick)
    if args.no_idle_wait:
        plan.idle_wait = 0.0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / stamp
    logs.mkdir(parents=True, exist_ok=True)
    wrk = wrk_path()
    if wrk is None:
        print("wrk not found: apt-get install wrk (closed-loop phases are skipped)")
    parts = args.only or list(DEFAULT_PARTS)
    summary: dict[str, Any] = {
        "quick": args.quick,
        "started": stamp,
        "cores": os.cpu_count(),
        "phase_s": plan.measure,
        "warmup_s": plan.warmup,
        "rates": list(RATES),
        "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{plan.wrk_seconds:.0f}s" if wrk else None,
        "targets": {},
        "errors": {},
        "logs": str(logs),
    }
    runners: dict[str, Callable[[Plan, str | None, Path], dict[str, Any]]] = {
        "bare": bench_bare,
        "floor-sqlite": lambda plan, wrk, logs: bench_floor(plan, wrk, logs, "sqlite"),
        "floor-postgres": lambda plan, wrk, logs: bench_floor(plan, wrk, logs, "postgres"),
        "sqlite": bench_sqlite,
        "postgres": bench_postgres,
        "sqlite-no-worker": lambda plan, wrk, logs: bench_sqlite(plan, wrk, logs, worker=False),
        "postgres-no-worker": lambda plan, wrk, logs: bench_postgres(plan, wrk, logs, worker=False),
        "postgres-procfile": lambda plan, wrk, logs: bench_postgres(plan, wrk, logs, procfile=True),
    }
    print(f"benchmark ({'quick' if args.quick else 'full'}); logs in {logs}")
    for name, runner in runners.items():
        if name not in parts:
            continue
        # Other work on the machine skews every figure: start in a quiet moment if one comes,
        # and tell the reader how busy it was.
        busy = wait_for_idle(plan.idle_wait) if plan.idle_wait else None
        load1 = round(os.getloadavg()[0], 2)
        print(f"\n>> {name} (load average {load1}, machine busy {fmt(busy)}%)", flush=True)
        try:
            summary["targets"][name] = {
                "loadavg_1m": load1,
                "busy_at_start_pct": busy,
                **runner(plan, wrk, logs),
            }
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            summary["errors"][name] = str(exc)
            print(f"!! {name} failed: {exc}", flush=True)
    if "e2e" in parts:
        busy = wait_for_idle(plan.idle_wait) if plan.idle_wait else None
        load1 = round(os.getloadavg()[0], 2)
        print(f"\n>> end to end (load average {load1}, machine busy {fmt(busy)}%)", flush=True)
        try:
            summary["e2e"] = {
                "loadavg_1m": load1,
                "busy_at_start_pct": busy,
                **bench_e2e(plan, logs),
            }
        except (BenchError, OSError, subprocess.SubprocessError, TimeoutError) as exc:
            summary["errors"]["e2e"] = f"{type(exc).__name__}: {exc}"
            print(f"!! end to end failed: {type(exc).__name__}: {exc}", flush=True)

    bare = summary["targets"].get("bare")
    for name, data in summary["targets"].items():
        database = "postgres" if "postgres" in name else "sqlite" if "sqlite" in name else None
        floor = summary["targets"].get(f"floor-{database}") if database else None
        print_target(name, data, bare, floor)
    if summary.get("e2e"):
        print_e2e(summary["e2e"])
    summary["verdicts"] = verdicts(summary)
    others = [
        phase.get("other_cpu_pct") or 0.0
        for target in summary["targets"].values()
        for phase in [*target["open"].values(), target.get("closed") or {}]
    ]
    e2e = summary.get("e2e")
    if e2e:
        others.append(max(0.0, e2e["other_cpu_pct"] - e2e["sink_cpu_pct"]))
    summary["max_other_cpu_pct"] = max(others, default=None)
    if others and max(others) > NOISY_OTHER_PCT:
        print(
            f"\nWARNING: other processes used up to {max(others):.0f}% of a core during a "
            "phase (column other%): the machine was not idle and these figures are unreliable; "
            "run again on an idle machine."
        )
    print("\n== targets ==")
    for v in summary["verdicts"]:
        verdict = "n/a " if v["value"] is None else "PASS" if v["pass"] else "FAIL"
        print(f"{verdict}  {v['check']}: {fmt(v['value'])}")
    for name, error in summary["errors"].items():
        print(f"ERROR {name}: {error}")
    line = json.dumps(summary, separators=(",", ":"))
    (logs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("BENCH_SUMMARY " + line, flush=True)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
