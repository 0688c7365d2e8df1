"""Real `responder` processes for the crash and fault tests, started as the Procfile starts
them (`serve --no-worker` beside `worker`), reaching the vendor fakes through the URL
settings, and stopped, killed or replaced by the test.

Everything a `Processes` started is ended when it closes, whatever the test did: a test that
fails half-way leaves no service running on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.pagerduty import API_TOKEN as PD_API_TOKEN
from tests.fakes.pagerduty import ROUTING_KEY, USER_EMAIL
from tests.harness import REPO, SLACK_TOKEN, TOKEN
from tests.vendors import DD_API_KEY, DD_APP_KEY, PAYMENTS_KEY, Vendors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(db_url: str, fakes: Vendors, **extra: str) -> dict[str, str]:
    """The environment of every process: the fakes' URLs and keys, quick leases and polls.

    Storm mode and Slack's per-channel pacing are off: these tests count one root per
    incident, and the fakes do not rate-limit unless told to. Incidents are never resolved
    as stale: the tests decide when each one recovers.
    """
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
        "RESPONDER_WEBHOOK_TOKEN": TOKEN,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "RESPONDER_SLACK_API_URL": fakes.slack.base_url,
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_PAYMENTS_KEY": PAYMENTS_KEY,
        "PAGERDUTY_API_TOKEN": PD_API_TOKEN,
        "PAGERDUTY_FROM_EMAIL": USER_EMAIL,
        "RESPONDER_PAGERDUTY_EVENTS_URL": fakes.pagerduty.events_url,
        "RESPONDER_PAGERDUTY_API_URL": fakes.pagerduty.api_url,
        "DD_API_KEY": DD_API_KEY,
        "DD_APP_KEY": DD_APP_KEY,
        "RESPONDER_DATADOG_API_URL": fakes.datadog.base_url,
        "RESPONDER_LEASE_SECONDS": "3",  # a killed worker's runs come back quickly
        "RESPONDER_POLL_SECONDS": "0.1",
        "RESPONDER_STORM_RATE": "0",
        "RESPONDER_SLACK_CHANNEL_INTERVAL": "0",
        "RESPONDER_STALE_AFTER": "off",
        **extra,
    }


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Processes:
    """The processes of one test: a web process, workers, one-off commands.

    `prefix` goes before every command line (say, `nsenter ...` to run inside a mount
    namespace of the test's own).
    """

    def __init__(self, env: dict[str, str], logs: Path, prefix: Sequence[str] = ()) -> None:
        self.env = env
        self.logs = logs
        self.prefix = list(prefix)
        self.port = free_port()
        self._started: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}  # pid -> its output

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def web(self, *, worker: bool = False) -> subprocess.Popen[bytes]:
        """`responder serve` on `port`, ready to answer; `--no-worker` unless `worker`."""
        args = ["serve", "--port", str(self.port)] + ([] if worker else ["--no-worker"])
        proc = self._start("web", args)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return proc
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the web process did not start:\n" + self.log_tail())

    def worker(self) -> subprocess.Popen[bytes]:
        """`responder worker`, once it says it has started."""
        proc = self._start("worker", ["worker"])
        log = self._logs[proc.pid]
        wait_until(
            lambda: proc.poll() is not None or "worker started" in log.read_text(errors="replace"),
            30,
            "the worker to start",
        )
        assert proc.poll() is None, "the worker exited:\n" + self.log_tail()
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-off `responder` command, its output captured."""
        return subprocess.run(
            [*self.prefix, sys.executable, "-m", "responder.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def audit_verified(self) -> str:
        """`responder audit verify`'s output; fails the test unless it exits 0."""
        done = self.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM, as a platform stops a process; SIGKILL if it has not ended in 15 s."""
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill(proc)

    def close(self) -> None:
        for proc in reversed(self._started):
            self.stop(proc)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        number = sum(1 for _ in self.logs.glob(f"{name}-*.log"))
        log = self.logs / f"{name}-{number}.log"
        proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "responder.cli", *args],
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._started.append(proc)
        self._logs[proc.pid] = log
        return proc


@contextmanager
def processes(env: dict[str, str], logs: Path, prefix: Sequence[str] = ()) -> Iterator[Processes]:
    logs.mkdir(parents=True, exist_ok=True)
    running = Processes(env, logs, prefix)
    try:
        yield running
    finally:
        running.close()
