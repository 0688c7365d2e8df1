"""Settings of the alert streams: durations read from the environment, with clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from responder.settings import Settings


def test_stream_defaults() -> None:
    settings = Settings()
    assert settings.reminder_interval == timedelta(hours=1)
    assert settings.stale_after == timedelta(hours=24)


def test_stream_durations_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONDER_REMINDER_INTERVAL", "30m")
    monkeypatch.setenv("RESPONDER_STALE_AFTER", "off")
    settings = Settings()
    assert settings.reminder_interval == timedelta(minutes=30)
    assert settings.stale_after is None


@pytest.mark.parametrize("name", ["RESPONDER_REMINDER_INTERVAL", "RESPONDER_STALE_AFTER"])
def test_a_bad_duration_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "a while")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert f"bad duration 'a while' for {name}" in str(caught.value)


@pytest.mark.parametrize("value", ["3651d", "99999999999d", "99999999999999999999999s"])
def test_a_duration_past_ten_years_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # The last two raised OverflowError, past pydantic, before durations had a ceiling.
    monkeypatch.setenv("RESPONDER_STALE_AFTER", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "RESPONDER_STALE_AFTER must be at most 3650d" in str(caught.value)
