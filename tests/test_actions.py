"""Helpers of the vendor contract that every integration shares."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from responder.actions import (
    format_duration,
    iso_utc,
    parse_time,
    retry_seconds,
    text_or_none,
)
from tests.contexts import RECOVERED, TRIGGERED, action_context, incident_view


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T22:00:00+00:00", datetime(2026, 11, 22, 22, tzinfo=UTC)),
        ("2026-11-22T22:00:00Z", datetime(2026, 11, 22, 22, tzinfo=UTC)),  # Datadog's answers
        ("2026-11-22 22:00:00.250000", datetime(2026, 11, 22, 22, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-23T00:00:00+02:00", datetime(2026, 11, 22, 22, tzinfo=UTC)),
        ("  2026-11-22T22:00:00Z ", datetime(2026, 11, 22, 22, tzinfo=UTC)),
    ],
)
def test_a_time_is_read_as_utc(text: str, expected: datetime) -> None:
    moment = parse_time(text)
    assert moment == expected
    assert moment is not None and moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "  ", "yesterday", "2026-13-01", 1732305491000])
def test_no_time_when_absent_or_unreadable(value: object) -> None:
    assert parse_time(value) is None


def test_an_offset_time_keeps_its_instant() -> None:
    moment = datetime(2026, 11, 22, 18, tzinfo=timezone(timedelta(hours=-4)))
    assert parse_time(moment.isoformat()) == moment


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_in_seconds(value: object, expected: float | None) -> None:
    assert retry_seconds(value) == expected


def test_format_duration() -> None:
    assert format_duration(750) == "12m 30s"
    assert format_duration(45) == "45s"
    assert format_duration(3600) == "1h"
    assert format_duration(90061) == "1d 1h 1m"
    assert format_duration(-5) == "0s"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (59.9, "59s"),  # whole seconds, never rounded up past what happened
        (3605, "1h 5s"),  # under a day the seconds still fall within three units
        (90_005, "1d 1h"),  # seconds are not among the three units from days
        (86_405, "1d"),  # not "1d 5s"
        (86_400 + 60, "1d 1m"),
        (3 * 86_400 + 7_200 + 300 + 9, "3d 2h 5m"),
    ],
)
def test_a_duration_shows_three_units_from_the_largest(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_text_or_none_strips_and_drops_blanks() -> None:
    assert text_or_none("  Ada ") == "Ada"
    assert text_or_none(42) == "42"
    assert text_or_none("   ") is None
    assert text_or_none(None) is None


def test_iso_utc_spells_an_instant_one_way() -> None:
    east = datetime(2026, 11, 23, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(east) == "2026-11-22T22:00:00+00:00"


OPENED = datetime(2026, 11, 22, 22, tzinfo=UTC)


def test_a_recovery_ends_at_its_own_time_not_when_we_resolved() -> None:
    # Datadog's time for the recovery is the truth; resolved_at is when we heard of it.
    late = RECOVERED.date + timedelta(minutes=2)
    ctx = action_context("x", alert=RECOVERED, view=incident_view(resolved_at=late))
    assert ctx.recovered_at == RECOVERED.date
    assert ctx.time_to_recover == RECOVERED.date - OPENED == timedelta(minutes=23)


def test_another_alert_ends_at_the_incidents_resolved_time() -> None:
    resolved = OPENED + timedelta(minutes=12, seconds=30)
    ctx = action_context("x", alert=TRIGGERED, view=incident_view(resolved_at=resolved))
    assert ctx.recovered_at == resolved
    assert ctx.time_to_recover == timedelta(minutes=12, seconds=30)


def test_no_recovery_time_while_the_incident_is_open() -> None:
    ctx = action_context("x", alert=TRIGGERED)
    assert ctx.recovered_at is None
    assert ctx.time_to_recover is None


def test_a_recovery_dated_before_the_opening_has_no_duration() -> None:
    # A sender's clock behind ours: better no duration than a negative one.
    early = replace(RECOVERED, date=OPENED - timedelta(seconds=5))
    ctx = action_context("x", alert=early)
    assert ctx.recovered_at == early.date
    assert ctx.time_to_recover is None


def test_the_alerts_facts_come_first_then_the_incidents() -> None:
    bare = replace(TRIGGERED, priority=None, monitor_id=None, scope="")
    view = incident_view(priority="P2", monitor_id="7", scope="env:prod")
    ctx = action_context("x", alert=bare, view=view)
    assert (ctx.priority, ctx.monitor_id, ctx.scope) == ("P2", "7", "env:prod")
    told = replace(TRIGGERED, priority="P1", monitor_id="9", scope="env:dev")
    ctx = action_context("x", alert=told, view=view)
    assert (ctx.priority, ctx.monitor_id, ctx.scope) == ("P1", "9", "env:dev")


def test_a_bare_tag_has_no_value() -> None:
    alert = replace(TRIGGERED, tag_map={"service": "payment", "monitor": ""})
    assert alert.tag("service") == "payment"
    assert alert.tag("monitor") is None
    assert alert.tag("team") is None
