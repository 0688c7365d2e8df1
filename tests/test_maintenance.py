"""Recurring maintenance windows (`maintenance.yaml` beside the playbooks): strict loading
with file and line, which moments a schedule covers, and a window through the service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from responder.main import Service
from responder.playbooks.library import PlaybookLibrary
from responder.playbooks.loader import PlaybookError, load_playbooks
from responder.playbooks.maintenance import load_maintenance
from responder.store.tables import AuditEntry, Incident
from tests.harness import REPO, post, running, sweep
from tests.stagekit import registry
from tests.test_silences import PLAYBOOK, web_alert
from tests.vendors import Vendors, settle, vendors

SUNDAY = """
maintenance:
  - name: sunday-patching
    matchers:
      tags: {service: "db*", env: prod}
      monitor_id: [123, "456"]
    every: sunday
    from: "02:00"
    to: "04:00"
    timezone: UTC
    reason: weekly database patching
"""


def write(folder: Path, text: str, name: str = "maintenance.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the week of Sunday 2026-12-06 (day 0 is that Sunday), UTC."""
    return datetime(2026, 12, 6, hour, minute, tzinfo=UTC) + timedelta(days=day)


def test_a_window_is_loaded_with_its_matchers_and_the_playbooks_leave_it_alone(
    tmp_path: Path,
) -> None:
    folder = write(tmp_path, SUNDAY)
    (folder / "notify.yaml").write_text("name: notify\nactions:\n  - slack.post: {channel: x}\n")
    [window] = load_maintenance(folder)
    assert window.name == "sunday-patching"
    assert window.reason == "weekly database patching"
    assert window.matchers.tags == {"service": ("db*",), "env": ("prod",)}
    assert window.matchers.monitor_ids == ("123", "456")
    assert (window.source, window.line) == (folder / "maintenance.yaml", 3)
    assert [p.name for p in load_playbooks(folder, registry().params_models())] == ["notify"]


def test_no_file_is_no_window(tmp_path: Path) -> None:
    assert load_maintenance(tmp_path) == []
    assert load_maintenance(REPO / "playbooks") == []


@pytest.fixture
def sunday(tmp_path: Path) -> Path:
    return write(tmp_path, SUNDAY)


def test_sunday_two_to_four(sunday: Path) -> None:
    [window] = load_maintenance(sunday)
    assert window.covering(at(0, 2)) == at(0, 4)
    assert window.covering(at(0, 3, 59)) == at(0, 4)
    assert window.covering(at(0, 4)) is None  # the end is not covered
    assert window.covering(at(0, 1, 59)) is None
    assert window.covering(at(-1, 3)) is None  # Saturday
    assert window.covering(at(7, 3)) == at(7, 4)  # every Sunday


def test_a_window_past_midnight_and_in_a_time_zone(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "maintenance:\n"
        "  - name: late\n"
        "    matchers: {scope: 'host:db-1'}\n"
        "    every: [saturday]\n"
        '    from: "23:00"\n'
        '    to: "01:00"\n'
        "    timezone: Europe/Paris\n",
    )
    [window] = load_maintenance(folder)
    # Saturday 23:00 in Paris (winter, UTC+1) is 22:00 UTC; it lasts until Sunday 00:00 UTC.
    assert window.covering(at(-1, 22)) == at(0, 0)
    assert window.covering(at(-1, 23, 30)) == at(0, 0)
    assert window.covering(at(0, 0)) is None
    assert window.covering(at(-1, 21, 59)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SUNDAY.replace('"02:00"', "2:00"), ":8: from: write the time in quotes"),
        (
            SUNDAY.replace("sunday", "sundae"),
            ":7: every: 'sundae' is not one of day",
        ),
        (
            SUNDAY.replace("    reason:", "    color: red\n    reason:"),
            ":11: unknown key 'color' in maintenance window",
        ),
        (SUNDAY.replace("UTC", "Mars/Olympus"), ":10: timezone: unknown time zone 'Mars/Olympus'"),
        (
            SUNDAY.replace('      tags: {service: "db*", env: prod}\n', "").replace(
                '      monitor_id: [123, "456"]\n', "      monitor_id: []\n"
            ),
            ":5: matchers.monitor_id: give a value",
        ),
        (SUNDAY.replace('"db*"', '"db["'), ":5: matchers.tags: tag 'service': unclosed '['"),
        ("- name: x\n", ":1: a maintenance file holds one key"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    folder = write(tmp_path, text)
    with pytest.raises(PlaybookError) as caught:
        load_maintenance(folder)
    [error] = caught.value.errors
    assert error.startswith(str(folder / "maintenance.yaml")), error
    assert expected in error, error


def test_a_window_name_given_twice_is_refused(tmp_path: Path) -> None:
    twice = SUNDAY + SUNDAY.split("maintenance:\n")[1]
    with pytest.raises(PlaybookError, match=r":12: duplicate maintenance window"):
        load_maintenance(write(tmp_path, twice))


# --- through the service ----------------------------------------------------------------------


@pytest.fixture
def fakes() -> Iterator[Vendors]:
    with vendors() as all_three:
        yield all_three


def around_now(folder: Path) -> datetime:
    """A daily window from an hour ago to an hour from now (UTC); returns its end."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    write(
        folder,
        "maintenance:\n"
        "  - name: nightly-web\n"
        "    matchers: {tags: {service: 'web*'}}\n"
        "    every: day\n"
        f'    from: "{start:%H:%M}"\n'
        f'    to: "{end:%H:%M}"\n',
    )
    return end


def silenced_records(service: Service) -> list[dict[str, object]]:
    with Session(service.engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.kind == "event.silenced")).all()
        return [json.loads(row.data) for row in rows]


def test_an_alert_in_a_window_is_silenced_and_its_playbook_runs_when_it_ends(
    migrated_url: str, fakes: Vendors, tmp_path: Path
) -> None:
    folder = tmp_path / "playbooks"
    write(folder, PLAYBOOK, "web.yaml")
    ends = around_now(folder)
    settings = fakes.settings(migrated_url, folder)
    with running(settings) as (service, client):
        assert post(client, web_alert()).status_code == 202
        settle(service)
        [record] = silenced_records(service)
        assert record["window"] == "nightly-web"
        assert record["reason"] == "maintenance window nightly-web"
    assert fakes.pagerduty.triggers() == 0
    with running(settings) as (service, client):  # a restart
        assert sweep(service, ends - timedelta(seconds=1)) == 0
        assert sweep(service, ends) == 1
        settle(service)
        with Session(service.engine) as session:
            [incident] = session.exec(select(Incident)).all()
        assert incident.silenced_until is None
    assert fakes.pagerduty.triggers() == 1
    assert len(fakes.slack.root_messages("C0INCIDENTS")) == 1


def test_windows_reload_with_the_playbooks_and_a_bad_one_keeps_the_running_set(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "notify.yaml").write_text("name: notify\nactions:\n  - slack.post: {channel: x}\n")
    library = PlaybookLibrary.load(folder, registry().params_models())
    assert library.windows() == ()
    before = library.fingerprint()
    write(folder, SUNDAY)  # only the windows change
    assert library.fingerprint() != before, "the watch would not see a window's edit"
    reload = library.adopt(library.build(), "test")
    assert reload.result == "changed"
    assert [w.name for w in library.windows()] == ["sunday-patching"]
    (folder / "maintenance.yaml").write_text("maintenance:\n  - name: x\n    every: someday\n")
    with pytest.raises(PlaybookError) as refused:
        library.build()
    assert any("maintenance.yaml:" in error for error in refused.value.errors)
    assert [w.name for w in library.windows()] == ["sunday-patching"]  # still running
