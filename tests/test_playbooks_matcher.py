"""Matching alerts to playbooks: criteria, `when` expressions, `final` and `fallback` order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from responder.domain import Alert, Transition, tag_map
from responder.playbooks import MatchSpec, Playbook, explain, matches, select


def make_alert(
    *,
    tags: tuple[str, ...] = ("env:prod", "monitor", "service:payment", "team:payments"),
    transition: Transition = Transition.TRIGGERED,
    priority: str | None = "P1",
    monitor: str = "High Payment Failure Rate",
) -> Alert:
    return Alert(
        source_id="7716548234011234567",
        monitor_id="148275309",
        monitor_name=monitor,
        title=f"[{transition.value}] {monitor}",
        transition=transition,
        alert_type="error",
        priority=priority,
        status_text="rate was > 5.0",
        query="avg(last_10m):sum:payment.errors{*} > 5",
        metric="payment.errors",
        scope="",
        cycle_key="7716548234000001111",
        aggreg_key=None,
        hostname=None,
        tags=tags,
        tag_map=tag_map(tags),
        message=None,
        link=None,
        snapshot=None,
        date=datetime(2026, 11, 18, 10, 0, tzinfo=UTC),
        org_id="1234",
        org_name="Acme Payments",
        event_type="query_alert_monitor",
        template="responder",
    )


def book(
    name: str, match: dict[str, Any] | None = None, *, final: bool = False, fallback: bool = False
) -> Playbook:
    return Playbook(
        name=name,
        match=MatchSpec.model_validate(match or {}),
        actions=[],
        final=final,
        fallback=fallback,
        source=Path("test.yaml"),
        line=1,
        content_hash="0" * 64,
    )


def names(playbooks: list[Playbook]) -> list[str]:
    return [p.name for p in playbooks]


def ok(match: dict[str, Any], alert: Alert, incident: dict[str, Any] | None = None) -> bool:
    return matches(MatchSpec.model_validate(match), alert, incident)[0]


def test_empty_match_takes_everything_but_recovered() -> None:
    for transition in Transition:
        expected = transition is not Transition.RECOVERED
        assert ok({}, make_alert(transition=transition)) is expected


def test_recovered_matches_when_listed() -> None:
    alert = make_alert(transition=Transition.RECOVERED)
    assert ok({"transition": ["Recovered"]}, alert)
    assert not ok({"transition": ["Triggered"]}, alert)
    assert not ok({"transition": ["Recovered"]}, make_alert())


def test_tags_are_case_sensitive_globs() -> None:
    alert = make_alert()
    assert ok({"tags": {"service": "pay*", "env": "prod"}}, alert)
    assert not ok({"tags": {"service": "Pay*"}}, alert)
    assert not ok({"tags": {"service": "pay*", "env": "staging"}}, alert)
    assert ok({"tags": {"env": ["staging", "pr?d"]}}, alert)
    assert not ok({"tags": {"env": ["staging", "dev"]}}, alert)


def test_star_means_the_tag_must_exist_even_bare() -> None:
    alert = make_alert()
    assert ok({"tags": {"monitor": "*"}}, alert)  # a bare tag has the value ""
    assert ok({"tags": {"team": "*"}}, alert)
    assert not ok({"tags": {"region": "*"}}, alert)


def test_priority_is_case_insensitive_and_required_when_listed() -> None:
    assert ok({"priority": ["p1", "P2"]}, make_alert(priority="P1"))
    assert ok({"priority": "P2"}, make_alert(priority="p2"))
    assert not ok({"priority": ["P1"]}, make_alert(priority="P3"))
    assert not ok({"priority": ["P1"]}, make_alert(priority=None))
    assert ok({}, make_alert(priority=None))


def test_monitor_glob_is_case_insensitive() -> None:
    alert = make_alert(monitor="High Payment Failure Rate")
    assert ok({"monitor": "*failure rate*"}, alert)
    assert ok({"monitor": ["nope", "HIGH *"]}, alert)
    assert not ok({"monitor": "*latency*"}, alert)


def test_when_true_false_and_erroring() -> None:
    alert = make_alert(tags=("service:payment", "region:us-east-1"))
    assert ok({"when": 'alert.tags.region != "eu-west-3"'}, alert)
    assert not ok({"when": 'alert.tags.region == "eu-west-3"'}, alert)
    spec = MatchSpec.model_validate({"when": 'alert.tags.zone == "a"'})
    matched, reason = matches(spec, alert)
    assert not matched
    assert reason.startswith("when failed:")
    assert "zone" in reason


def test_when_that_is_not_boolean_does_not_match() -> None:
    matched, reason = matches(MatchSpec.model_validate({"when": "alert.priority"}), make_alert())
    assert not matched
    assert "not true or false" in reason


def test_when_sees_the_incident() -> None:
    spec = {"when": 'has(incident.status) && incident.status == "acknowledged"'}
    alert = make_alert()
    assert ok(spec, alert, {"status": "acknowledged", "opened_at": datetime.now(UTC)})
    assert not ok(spec, alert, {"status": "triggered"})
    assert not ok(spec, alert, None)
    assert not ok({"when": 'incident.status == "x"'}, alert)  # missing key: no match, no raise


def test_when_runs_only_after_cheap_checks_pass() -> None:
    spec = MatchSpec.model_validate({"priority": "P2", "when": "alert.tags.nothing == 1"})
    assert matches(spec, make_alert()) == (False, "priority 'P1' not in [P2]")


def test_every_match_in_order() -> None:
    playbooks = [
        book("a", {"tags": {"team": "payments"}}),
        book("b"),
        book("c", {"priority": "P5"}),
    ]
    assert names(select(playbooks, make_alert())) == ["a", "b"]


def test_final_stops_the_ones_after_it() -> None:
    playbooks = [
        book("before"),
        book("stopper", {"tags": {"env": "prod"}}, final=True),
        book("after"),
    ]
    assert names(select(playbooks, make_alert())) == ["before", "stopper"]
    staging = make_alert(tags=("env:staging",))
    assert names(select(playbooks, staging)) == ["before", "after"]  # a final that did not match


def test_fallback_only_when_nothing_else_matched() -> None:
    playbooks = [
        book("net", fallback=True),
        book("payments", {"tags": {"team": "payments"}}),
    ]
    assert names(select(playbooks, make_alert())) == ["payments"]
    assert names(select(playbooks, make_alert(tags=("team:growth",)))) == ["net"]


def test_fallbacks_follow_final_among_themselves() -> None:
    playbooks = [
        book("first-net", {"tags": {"env": "prod"}}, fallback=True, final=True),
        book("second-net", fallback=True),
    ]
    assert names(select(playbooks, make_alert())) == ["first-net"]
    assert names(select(playbooks, make_alert(tags=()))) == ["second-net"]


def test_explain_gives_a_reason_for_each_playbook() -> None:
    playbooks = [
        book("stop", {"tags": {"team": "payments"}}, final=True),
        book("later"),
        book("net", fallback=True),
        book("other", {"tags": {"team": "growth"}}),
    ]
    result = explain(playbooks, make_alert())
    assert [(p.name, matched) for p, matched, _ in result] == [
        ("stop", True),
        ("later", False),
        ("net", False),
        ("other", False),
    ]
    reasons = [reason for _, _, reason in result]
    assert reasons[0] == "matched"
    assert "'stop'" in reasons[1]
    assert reasons[2] == "fallback not needed: 'stop' matched"
    assert "final" in reasons[3]


def test_explain_reasons_for_misses() -> None:
    alert = make_alert(priority=None)
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "missing-tag": ({"tags": {"region": "eu"}}, "alert has no tag 'region'"),
        "wrong-tag": ({"tags": {"team": "growth"}}, "tag 'team' is 'payments', wanted [growth]"),
        "no-priority": ({"priority": "P1"}, "alert has no priority; playbook wants [P1]"),
        "monitor": (
            {"monitor": "*disk*"},
            "monitor 'High Payment Failure Rate' does not match [*disk*]",
        ),
        "false": ({"when": "1 == 2"}, "when is false: 1 == 2"),
    }
    playbooks = [book(name, match) for name, (match, _) in cases.items()]
    for playbook, matched, reason in explain(playbooks, alert):
        assert not matched
        assert reason == cases[playbook.name][1]


@pytest.mark.parametrize("title", ["{{ 7*7 }}", "<!channel>", 'safe" || true || "'])
def test_alert_text_is_data_for_cel(title: str) -> None:
    alert = dataclasses.replace(make_alert(), monitor_name=title)
    assert not ok({"when": 'alert.monitor == "safe"'}, alert)
    assert ok({"when": f"size(alert.monitor) == {len(title)}"}, alert)
