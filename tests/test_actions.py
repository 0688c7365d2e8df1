"""Helpers of the vendor contract that every integration shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from responder.actions import format_duration, parse_time, retry_seconds


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
