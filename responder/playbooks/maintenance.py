"""Silence matchers as people write them (YAML, API, CLI), and recurring maintenance windows
(`maintenance.yaml` beside the playbooks): strict models, the file's loader with
"FILE:LINE: problem" errors, and which occurrence of a window covers a moment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from responder.playbooks.loader import (
    MAINTENANCE_FILES,
    PlaybookError,
    _Problems,
    _read_documents,
    _report,
)
from responder.playbooks.schema import MatchSpec
from responder.records import SilenceMatchers

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY_DAY = "day"


class MatchersSpec(BaseModel):
    """`matchers:` of a silence or window: tags with globs, monitor ids, monitor name globs,
    exact scopes. Every key given must hold; at least one is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    monitor_id: tuple[str, ...] = ()
    monitor: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> dict[str, tuple[str, ...]]:
        _given(value)
        return _as_playbooks_check(tags=value).tags

    @field_validator("monitor", mode="before")
    @classmethod
    def _monitor(cls, value: Any) -> tuple[str, ...]:
        _given(value)
        return _as_playbooks_check(monitor=value).monitor or ()

    @field_validator("monitor_id", mode="before")
    @classmethod
    def _monitor_id(cls, value: Any) -> tuple[str, ...]:
        items = _given(value)
        out = []
        for item in items:
            # Datadog's ids are numbers; YAML and JSON authors write them either way.
            if isinstance(item, bool) or not isinstance(item, str | int) or str(item) == "":
                raise ValueError(f"a monitor id is a number like 148275309, got {item!r}")
            out.append(str(item))
        return tuple(out)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> tuple[str, ...]:
        items = _given(value)
        if not all(isinstance(item, str) and item for item in items):
            raise ValueError("a scope is the monitor's scope text, e.g. 'host:web-1'")
        return tuple(items)

    def matchers(self) -> SilenceMatchers:
        if not (self.tags or self.monitor_id or self.monitor or self.scope):
            raise ValueError("give at least one of tags, monitor_id, monitor, scope")
        return SilenceMatchers(
            tags=self.tags,
            monitor_ids=self.monitor_id,
            monitors=self.monitor,
            scopes=self.scope,
        )


def _as_playbooks_check(**given: Any) -> MatchSpec:
    """The playbooks' own rules and messages for tags and monitor globs."""
    try:
        return MatchSpec.model_validate(given)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(message) from None


def _given(value: Any) -> list[Any]:
    """One value or a non-empty list of them; a key left empty is a mistake, not "any"."""
    if value is None or value in ([], {}):
        raise ValueError("give a value, or leave the key out")
    return value if isinstance(value, list) else [value]


class WindowSpec(BaseModel):
    """One entry of `maintenance:` as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: StrictStr
    matchers: MatchersSpec
    every: tuple[str, ...]
    start: time = Field(alias="from")
    end: time = Field(alias="to")
    timezone: StrictStr = "UTC"
    reason: StrictStr = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '-', '_' and '.'")
        return value

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        allowed = (EVERY_DAY, *DAYS)
        out = []
        for item in items:
            text = item.lower() if isinstance(item, str) else ""
            if text not in allowed:
                raise ValueError(f"{item!r} is not one of {', '.join(allowed)}")
            out.append(text)
        if not out:
            raise ValueError("name at least one day")
        return tuple(out)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> time:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 02:00 as the number 120 (base 60).
            raise ValueError('write the time in quotes, like "02:00"')
        found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(f'a time is "HH:MM" in 24 hours, like "02:00", got {value!r}')
        return time(int(found.group(1)), int(found.group(2)))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Paris)") from None
        return value


class MaintenanceWindow:
    """A recurring window: alerts its matchers cover, on its days between `from` and `to`
    (local to its time zone; a `to` at or before `from` ends the next day), are silenced."""

    def __init__(self, spec: WindowSpec, source: Path, line: int) -> None:
        self.name = spec.name
        self.matchers = spec.matchers.matchers()
        self.reason = spec.reason or f"maintenance window {spec.name}"
        self.source = source
        self.line = line
        self._days = {DAYS.index(d) for d in spec.every if d != EVERY_DAY}
        if EVERY_DAY in spec.every:
            self._days = set(range(7))
        self._start = spec.start
        self._zone = ZoneInfo(spec.timezone)
        start = datetime.combine(date(2000, 1, 3), spec.start)
        end = datetime.combine(date(2000, 1, 3), spec.end)
        self._length = end - start if end > start else end + timedelta(days=1) - start

    def covering(self, at: datetime) -> datetime | None:
        """The end of the occurrence covering `at` (UTC), or None outside the window."""
        local = at.astimezone(self._zone)
        for back in (0, 1):  # an occurrence that began yesterday may still last
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self._days:
                continue
            begins = datetime.combine(day, self._start, self._zone)
            ends = begins + self._length
            if begins <= at < ends:
                return ends.astimezone(at.tzinfo)
        return None

    def __repr__(self) -> str:
        return f"MaintenanceWindow({self.name!r}, {self.source}:{self.line})"


def maintenance_files(folder: Path) -> list[Path]:
    """The maintenance files of the playbook folder that exist."""
    return [folder / name for name in MAINTENANCE_FILES if (folder / name).is_file()]


def load_maintenance(folder: Path) -> list[MaintenanceWindow]:
    """The windows of `maintenance.yaml` in the playbook folder (none without the file), or
    PlaybookError naming file, line and problem."""
    paths = maintenance_files(folder)
    errors: list[str] = []
    windows: list[MaintenanceWindow] = []
    for path in paths:
        problems = _Problems(path)
        windows += _windows(problems, {w.name: w for w in windows})
        errors.extend(problems.messages())
    if errors:
        raise PlaybookError(errors)
    return windows


def _windows(problems: _Problems, seen: dict[str, MaintenanceWindow]) -> list[MaintenanceWindow]:
    found: list[MaintenanceWindow] = []
    for doc in _read_documents(problems):
        if not isinstance(doc.data, dict) or set(doc.data) != {"maintenance"}:
            doc.error((), "a maintenance file holds one key, `maintenance:`, with a list")
            continue
        entries = doc.data["maintenance"]
        if not isinstance(entries, list):
            doc.error(("maintenance",), "maintenance: write a list of windows")
            continue
        for index, entry in enumerate(entries):
            loc = ("maintenance", index)
            try:
                spec = WindowSpec.model_validate(entry)
                window = MaintenanceWindow(spec, problems.path, doc.line_of(loc))
            except ValidationError as exc:
                before = len(problems.found)
                _report(doc, exc, loc, WindowSpec, None)
                problems.found[before:] = [
                    (line, message.replace(" in playbook (", " in maintenance window ("))
                    for line, message in problems.found[before:]
                ]
                continue
            except ValueError as exc:  # no matchers at all
                doc.error((*loc, "matchers"), str(exc))
                continue
            if window.name in seen:
                doc.error((*loc, "name"), f"duplicate maintenance window {window.name!r}")
                continue
            seen[window.name] = window
            found.append(window)
    return found


def covering(
    windows: Sequence[MaintenanceWindow], at: datetime
) -> list[tuple[MaintenanceWindow, datetime]]:
    """The windows open at `at`, each with the end of its current occurrence."""
    found = []
    for window in windows:
        ends = window.covering(at)
        if ends is not None:
            found.append((window, ends))
    return found
