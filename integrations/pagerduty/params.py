"""What a playbook step may say to the PagerDuty actions, checked when the playbook loads."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from responder.actions import StepParams, text_or_none

Severity = Literal["critical", "error", "warning", "info"]

ENV_REFERENCE = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")
_LITERAL_KEY = (
    "routing_key must name an environment variable, such as env:PAGERDUTY_PAYMENTS_KEY; "
    "a playbook never holds the key itself (put it in that variable)"
)


def _reference(value: str | None) -> str | None:
    # The message never repeats the value: it may be a real key pasted by mistake.
    if value is None:
        return None
    value = value.strip()
    if not ENV_REFERENCE.match(value):
        raise ValueError(_LITERAL_KEY)
    return value


class EventParams(StepParams):
    """`pagerduty.acknowledge` / `pagerduty.resolve`: which integration, by reference."""

    routing_key: str | None = None

    @field_validator("routing_key")
    @classmethod
    def _routing_key_is_a_reference(cls, value: str | None) -> str | None:
        return _reference(value)


class TriggerParams(EventParams):
    """`pagerduty.trigger`: everything optional; defaults come from the alert."""

    severity: Severity | None = None
    summary: str | None = None
    component: str | None = None
    group: str | None = None
    # "class" is a Python keyword: the field is `class_`, the playbook key stays `class`.
    class_: str | None = Field(None, alias="class")
    custom_details: dict[str, Any] | None = None

    @field_validator("summary", "component", "group", "class_")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return text_or_none(value)


class NoteParams(StepParams):
    """`pagerduty.note`: a note on the PagerDuty incident our trigger opened."""

    content: str

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content is empty; write the note's text")
        return value
