"""The disk under SQLite fills up, then has room again.

A real `responder serve` keeps its database on a tmpfs of a few megabytes. While the disk
is full, a webhook gets 503 saying so (Datadog delivers again) and the log says the disk
is full; nothing is corrupted; once there is room again the service carries on by itself
and everything it acknowledged is processed, once.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.backlog import LEFT
from tests.databases import SqliteStates
from tests.fraud_alerts import event_id, problems, recovered, triggered
from tests.harness import TOKEN
from tests.load import send
from tests.processes import processes, service_env, wait_until
from tests.small_disk import SmallDisk, small_disk
from tests.vendors import vendors

pytestmark = pytest.mark.slow

BEFORE = range(4)  # monitors that fire while there is room
DURING = range(4, 24)  # monitors that fire while the disk is full
DATABASE = "responder.db"
DISK_FULL = '{"error":"database disk is full; deliver again later"}'


def integrity(disk: SmallDisk) -> str:
    return str(disk.query(DATABASE, "PRAGMA integrity_check")[0][0])


def stored_events(disk: SmallDisk) -> set[str]:
    return {str(row[0]) for row in disk.query(DATABASE, "SELECT source_id FROM alert_event")}


def left(disk: SmallDisk) -> int:
    return int(disk.query(DATABASE, LEFT)[0][0])


def not_succeeded(disk: SmallDisk) -> list[tuple[object, ...]]:
    query = "SELECT id, action, state, last_error FROM action_run WHERE state <> 'succeeded'"
    return disk.query(DATABASE, query)


def post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/webhooks/datadog",
        data=body,
        headers={"Content-Type": "application/json", "X-Responder-Token": TOKEN},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_full_disk_refuses_webhooks_clearly_and_recovers_by_itself(
    sqlite_states: SqliteStates, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "8m") as disk, vendors() as fakes:
        database = disk.outside / "responder.db"
        sqlite_states.restore(database)
        env = service_env(f"sqlite:///{disk.inside}/responder.db", fakes)
        with processes(env, tmp_path / "logs", disk.prefix) as procs:
            service = procs.web(worker=True)
            # The disk fills while the worker is busy: the first Slack post is answered
            # late, and its outcome is written after the disk is full.
            fakes.slack.delay_next("chat.postMessage", 2.0)
            sent = send(procs.url, [triggered(n) for n in BEFORE], rate=20)
            assert sent.kinds() == {202: len(BEFORE)}
            wait_until(lambda: len(fakes.slack.root_messages()) > 0, 20, "a first post")
            disk.fill()

            refused = [post(procs.url, triggered(n)) for n in DURING]
            assert {status for status, _ in refused} == {503}, refused
            assert {body for _, body in refused} == {DISK_FULL}
            assert '"event": "webhook.disk_full"' in procs.log_text()
            wait_until(lambda: '"worker.disk_full"' in procs.log_text(), 10, "the worker to say")
            assert integrity(disk) == "ok"
            assert service.poll() is None

            disk.free()
            # Datadog delivers again; the service takes them without being restarted.
            sent = send(procs.url, [triggered(n) for n in DURING], rate=20)
            assert sent.kinds() == {202: len(DURING)}
            wait_until(lambda: left(disk) == 0, 60, "every run to finish")
            everything = range(len(BEFORE) + len(DURING))
            assert stored_events(disk) == {event_id(triggered(n)) for n in everything}
            assert problems(fakes, everything, recovered=False) == []
            sent = send(procs.url, [recovered(n) for n in everything], rate=20)
            assert sent.kinds() == {202: len(everything)}
            wait_until(lambda: left(disk) == 0, 60, "the recoveries")
            assert problems(fakes, everything, recovered=True) == []
            assert not_succeeded(disk) == []
            assert service.poll() is None
            procs.stop(service)
            assert integrity(disk) == "ok"
            procs.audit_verified()
