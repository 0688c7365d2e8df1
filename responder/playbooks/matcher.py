"""Which playbooks an alert selects: match criteria, `when` expressions, and the ordering
rules of `final` and `fallback`. Never raises for a bad alert: a failed check is a non-match."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

from responder.domain import Alert, Transition
from responder.playbooks.schema import MatchSpec, Playbook
from responder.records import SilenceMatchers

Verdict = tuple[bool, str]


def select(
    playbooks: Sequence[Playbook], alert: Alert, incident: Mapping[str, Any] | None = None
) -> list[Playbook]:
    """The playbooks to run for `alert`, in playbook order."""
    return [playbook for playbook, matched, _ in explain(playbooks, alert, incident) if matched]


def explain(
    playbooks: Sequence[Playbook], alert: Alert, incident: Mapping[str, Any] | None = None
) -> list[tuple[Playbook, bool, str]]:
    """Every playbook, in order, with whether it matched and why (for `playbooks test`)."""
    facts = _Facts(alert, incident or {})
    verdicts: dict[int, Verdict] = {}
    regular = [i for i, playbook in enumerate(playbooks) if not playbook.fallback]
    first = _decide(playbooks, regular, facts, verdicts)
    fallbacks = [i for i, playbook in enumerate(playbooks) if playbook.fallback]
    if first is None:
        _decide(playbooks, fallbacks, facts, verdicts)
    else:
        for i in fallbacks:
            verdicts[i] = (False, f"fallback not needed: {first!r} matched")
    return [(playbook, *verdicts[i]) for i, playbook in enumerate(playbooks)]


def _decide(
    playbooks: Sequence[Playbook], indices: Iterable[int], facts: _Facts, out: dict[int, Verdict]
) -> str | None:
    """Evaluate in order until a `final` match; return the first matching playbook's name."""
    first: str | None = None
    stopped_by: str | None = None
    for i in indices:
        playbook = playbooks[i]
        if stopped_by is not None:
            out[i] = (False, f"not considered: final playbook {stopped_by!r} matched before it")
            continue
        out[i] = _evaluate(playbook.match, facts)
        if out[i][0]:
            first = first or playbook.name
            if playbook.final:
                stopped_by = playbook.name
    return first


class _Facts:
    """The alert as the checks need it, each view computed at most once per alert."""

    def __init__(self, alert: Alert, incident: Mapping[str, Any]) -> None:
        self.alert = alert
        self.incident = incident

    @functools.cached_property
    def activation(self) -> dict[str, Any]:
        return {"alert": to_cel(self.alert.as_context()), "incident": to_cel(self.incident)}


def matches(spec: MatchSpec, alert: Alert, incident: Mapping[str, Any] | None = None) -> Verdict:
    """Check one `match:` block on its own, ignoring `final` and `fallback`."""
    return _evaluate(spec, _Facts(alert, incident or {}))


def _evaluate(spec: MatchSpec, facts: _Facts) -> Verdict:
    # Cheap checks first, so the `when` expression runs only when it can still matter.
    checks: tuple[Callable[[MatchSpec, _Facts], str | None], ...] = (
        _check_transition,
        _check_priority,
        _check_monitor,
        _check_tags,
        _check_when,
    )
    for check in checks:
        reason = check(spec, facts)
        if reason is not None:
            return False, reason
    return True, "matched"


def _check_transition(spec: MatchSpec, facts: _Facts) -> str | None:
    transition = facts.alert.transition
    if spec.transition is None:
        if transition is Transition.RECOVERED:
            return "Recovered matches only playbooks that list it in match.transition"
        return None
    if transition in spec.transition:
        return None
    return f"transition {transition.value!r} not in {_listed(t.value for t in spec.transition)}"


def _check_priority(spec: MatchSpec, facts: _Facts) -> str | None:
    if spec.priority is None:
        return None
    priority = (facts.alert.priority or "").upper()
    if not priority:
        return f"alert has no priority; playbook wants {_listed(spec.priority)}"
    if priority in spec.priority:
        return None
    return f"priority {priority!r} not in {_listed(spec.priority)}"


def _check_monitor(spec: MatchSpec, facts: _Facts) -> str | None:
    if spec.monitor is None:
        return None
    return monitor_mismatch(spec.monitor, facts.alert.monitor_name)


def _check_tags(spec: MatchSpec, facts: _Facts) -> str | None:
    return tags_mismatch(spec.tags, facts.alert.tag_map)


def monitor_mismatch(patterns: Sequence[str], name: str) -> str | None:
    """Why a monitor name matches none of these globs (any case), or None if one matches."""
    if any(fnmatchcase(name.lower(), pattern.lower()) for pattern in patterns):
        return None
    return f"monitor {name!r} does not match {_listed(patterns)}"


def tags_mismatch(wanted: Mapping[str, Sequence[str]], tags: Mapping[str, str]) -> str | None:
    """Why the tags fail `wanted` (each key present, its value matching one of the globs)."""
    for key, patterns in wanted.items():
        if key not in tags:
            return f"alert has no tag {key!r}"
        if not any(fnmatchcase(tags[key], pattern) for pattern in patterns):
            return f"tag {key!r} is {tags[key]!r}, wanted {_listed(patterns)}"
    return None


def silence_mismatch(matchers: SilenceMatchers, alert: Alert) -> str | None:
    """Why a silence or maintenance window does not cover `alert`, or None if it does.
    The same globs as a playbook's `match:`; a silence without criteria covers nothing."""
    if matchers.empty:
        return "no matchers"
    if matchers.monitor_ids and (alert.monitor_id or "") not in matchers.monitor_ids:
        return f"monitor id {alert.monitor_id!r} not in {_listed(matchers.monitor_ids)}"
    if matchers.scopes and alert.scope not in matchers.scopes:
        return f"scope {alert.scope!r} not in {_listed(matchers.scopes)}"
    if matchers.monitors:
        reason = monitor_mismatch(matchers.monitors, alert.monitor_name)
        if reason is not None:
            return reason
    return tags_mismatch(matchers.tags, alert.tag_map)


def _check_when(spec: MatchSpec, facts: _Facts) -> str | None:
    program = spec.program
    if program is None:
        return None
    try:
        result = program.evaluate(facts.activation)
    # celpy raises CELEvalError for most problems but plain Python errors for some; an
    # expression that cannot be evaluated for this alert is a non-match, never a crash.
    except Exception as exc:
        return f"when failed: {_cel_error(exc)}"
    if isinstance(result, CELEvalError):  # celpy may return the error instead of raising it
        return f"when failed: {_cel_error(result)}"
    if not isinstance(result, celtypes.BoolType):
        return f"when gave {result!r}, not true or false"
    return None if result else f"when is false: {spec.when}"


def _cel_error(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _listed(values: Iterable[str]) -> str:
    return "[" + ", ".join(values) + "]"


def to_cel(value: Any) -> Any:
    """Python data -> CEL values; anything unexpected becomes its string form, not an error."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, Mapping):
        return celtypes.MapType({to_cel(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(item) for item in value])
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, timedelta):
        return celtypes.DurationType(value)
    return celtypes.StringType(str(value))
