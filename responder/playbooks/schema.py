"""The playbook format: strict models for what a playbook file may say, and the value checks
(globs, priorities, transitions, CEL, durations) that give a bad file a precise error."""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import celpy
from celpy.celparser import CELParseError
from lark import Token, Tree
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from responder.domain import Transition, parse_duration

# Control keys sit beside an action's params in YAML but belong to the runner, not the action.
CONTROL_KEYS = ("after", "if")
# `incident.open`: skipped if resolved by then; `incident.unacknowledged`: an escalation,
# skipped if resolved or acknowledged by then (and cancelled when someone acknowledges).
SUPPORTED_CONDITIONS = ("incident.open", "incident.unacknowledged")
# Names a `when` expression may start from; anything else is a typo that would never match.
CEL_VARIABLES = ("alert", "incident")
_CEL_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
# Macros whose first argument binds a new variable, e.g. `alert.tag_list.exists(t, ...)`.
_CEL_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PRIORITY = re.compile(r"P[1-5]", re.IGNORECASE)


def _one_or_many(value: Any, what: str = "") -> list[Any]:
    """YAML authors write `priority: P1` as often as `priority: [P1]`; accept both."""
    items = value if isinstance(value, list) else [value]
    if not items:
        prefix = f"{what}: " if what else ""
        raise ValueError(f"{prefix}list at least one value, or leave the key out")
    return items


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        # YAML turns `true`, `2` or `1.10` into non-strings; coercing would silently change
        # `1.10` to "1.1" or `true` to "True", so ask for quotes instead.
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        raise ValueError(f"{what} must be text; quote it: '{shown}'")
    raise ValueError(f"{what} must be text, got {type(value).__name__}")


def check_glob(pattern: str, what: str = "") -> str:
    prefix = f"{what}: " if what else ""
    if not pattern:
        raise ValueError(f"{prefix}empty pattern (use '*' for any value)")
    # fnmatch reads an unclosed '[' as a literal, which is almost never what was meant.
    # Walk the sets the way fnmatch does: a ']' right after '[' or '[!' is a member.
    at = pattern.find("[")
    while at >= 0:
        end = at + 1
        end += pattern.startswith("!", end)
        end += pattern.startswith("]", end)
        end = pattern.find("]", end)
        if end < 0:
            raise ValueError(f"{prefix}unclosed '[' in {pattern!r} (write '[[]' for a literal '[')")
        at = pattern.find("[", end + 1)
    return pattern


class MatchSpec(BaseModel):
    """The `match:` block. Every listed criterion must hold; omitted ones always hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    priority: tuple[str, ...] | None = None
    # None means every transition except Recovered: recovery undoes steps without any YAML.
    transition: tuple[Transition, ...] | None = None
    monitor: tuple[str, ...] | None = None
    when: str | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> dict[str, tuple[str, ...]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("tags must be a mapping like {service: payments, env: prod}")
        out: dict[str, tuple[str, ...]] = {}
        for key, wanted in value.items():
            if not isinstance(key, str) or not key or ":" in key:
                raise ValueError(f"tag key {key!r} must be a plain name like 'service'")
            items = _one_or_many(wanted, f"tag '{key}'")
            what = f"tag '{key}'"
            out[key] = tuple(check_glob(_text(item, what), what) for item in items)
        return out

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        out = []
        for item in _one_or_many(value):
            text = _text(item, "value")
            if not _PRIORITY.fullmatch(text):
                raise ValueError(f"{text!r} is not one of P1, P2, P3, P4, P5")
            out.append(text.upper())
        return tuple(out)

    @field_validator("transition", mode="before")
    @classmethod
    def _transition(cls, value: Any) -> tuple[Transition, ...] | None:
        if value is None:
            return None
        known = {t.value.lower(): t for t in Transition}
        out = []
        for item in _one_or_many(value):
            text = _text(item, "value")
            if text.lower() not in known:
                allowed = ", ".join(t.value for t in Transition)
                raise ValueError(f"unknown transition {text!r} (allowed: {allowed})")
            out.append(known[text.lower()])
        return tuple(out)

    @field_validator("monitor", mode="before")
    @classmethod
    def _monitor(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        items = _one_or_many(value)
        return tuple(check_glob(_text(item, "value")) for item in items)

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> str | None:
        if value is None:
            return None
        source = _text(value, "the expression").strip()
        compile_when(source)
        return source

    @property
    def program(self) -> celpy.Runner | None:
        """The compiled `when` expression (compiled once, at load, then served from the cache)."""
        return None if self.when is None else compile_when(self.when)


class FlapSpec(BaseModel):
    """`flapping:`: when a monitor + scope counts as flapping, and when it is calm again.
    `flapping: false` turns flap control off for the playbook's incidents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = True
    changes: StrictInt = Field(3, ge=1)  # flapping after more state changes than this...
    window: timedelta = timedelta(minutes=20)  # ...within this long
    quiet: timedelta = timedelta(minutes=15)  # over once no change came for this long

    @model_validator(mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return {"enabled": False} if value is False else value

    @field_validator("window", "quiet", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> timedelta:
        return parse_duration(value, str(info.field_name))


class PlaybookDocument(BaseModel):
    """One YAML document as the author wrote it; steps are checked by the loader."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    description: StrictStr = ""
    match: MatchSpec = Field(default_factory=MatchSpec)
    final: StrictBool = False
    fallback: StrictBool = False
    # Resolve the incident as stale after this long without a delivery (instead of
    # RESPONDER_STALE_AFTER); `off` never does.
    stale_after: timedelta | None = None
    stale_off: bool = False
    flapping: FlapSpec | None = None
    # Alerts whose tags agree on these keys join one incident while it is open, whatever
    # their monitor or host; new members are told in the thread at most once per window.
    group_by: tuple[str, ...] | None = None
    group_window: timedelta = timedelta(minutes=5)
    actions: list[Any]

    @field_validator("group_by", mode="before")
    @classmethod
    def _group_by(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        keys = []
        for item in _one_or_many(value, "group_by"):
            key = _text(item, "group_by")
            if not key or ":" in key:
                raise ValueError(f"group_by key {key!r} must be a plain tag name like 'service'")
            keys.append(key)
        return tuple(keys)

    @field_validator("group_window", mode="before")
    @classmethod
    def _group_window(cls, value: Any) -> timedelta:
        return parse_duration(value, "group_window")

    @model_validator(mode="before")
    @classmethod
    def _stale_off(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("stale_after") in ("off", False):
            value = {**value, "stale_after": None, "stale_off": True}
        elif isinstance(value, dict) and "stale_off" in value:
            raise ValueError("stale_off is not a playbook key (write stale_after: off)")
        return value

    @field_validator("stale_after", mode="before")
    @classmethod
    def _stale_after(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value, "stale_after")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} may hold only letters, digits, '-', '_' and '.'"
                " (e.g. payments-critical)"
            )
        return value

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        # `match:` with nothing under it is YAML null; it means "match everything".
        return {} if value is None else value

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("write a list of steps (or [] for none)")
        return value


class Step(BaseModel):
    """One entry of `actions:`; params are raw (templates unrendered, control keys removed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int  # 0-based position in `actions`
    action: str
    params: dict[str, Any]
    after: timedelta | None = None
    condition: str | None = None  # the `if:` control key
    line: int


class Playbook(BaseModel):
    """A validated playbook, ready for the matcher and the planner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    match: MatchSpec = Field(default_factory=MatchSpec)
    actions: list[Step]
    final: bool = False
    fallback: bool = False
    stale_after: timedelta | None = None  # None: the service's default
    stale_off: bool = False
    flapping: FlapSpec | None = None  # None: the service's default
    group_by: tuple[str, ...] | None = None
    group_window: timedelta = timedelta(minutes=5)
    source: Path
    line: int
    content_hash: str  # sha256 of the document's canonical JSON: comments do not change it


def check_condition(value: Any) -> str:
    if value not in SUPPORTED_CONDITIONS:
        supported = ", ".join(SUPPORTED_CONDITIONS)
        raise ValueError(f"unsupported if {value!r} (supported: {supported})")
    return str(value)


@functools.cache
def _cel_environment() -> celpy.Environment:
    return celpy.Environment()


@functools.lru_cache(maxsize=1024)
def compile_when(source: str) -> celpy.Runner:
    """Compile a `when` expression, or raise ValueError saying what is wrong with it."""
    env = _cel_environment()
    try:
        tree = env.compile(source)
    except CELParseError as exc:
        raise ValueError(
            f"CEL expression does not compile at column {exc.column}: {source!r}"
        ) from None
    unknown = sorted(_free_names(tree) - set(CEL_VARIABLES) - _CEL_TYPE_NAMES)
    if unknown:
        # An unknown name fails on every alert, so the playbook would silently never match.
        raise ValueError(
            f"unknown name {unknown[0]!r} (expressions see: {', '.join(CEL_VARIABLES)})"
        )
    return env.program(tree)


def _free_names(tree: Tree[Token]) -> set[str]:
    """Top-level identifiers of a CEL parse tree, minus variables bound by macros."""
    used = {str(node.children[0]) for node in tree.find_data("ident")}
    bound: set[str] = set()
    for call in tree.find_data("member_dot_arg"):
        method = call.children[1]
        args = call.children[2] if len(call.children) > 2 else None
        if str(method) in _CEL_MACROS and isinstance(args, Tree) and args.children:
            first = args.children[0]
            if isinstance(first, Tree):
                bound.update(str(node.children[0]) for node in first.find_data("ident"))
    return used - bound
