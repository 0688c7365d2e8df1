"""The runner's cache of recently planned alerts: bounded, and each taker gets its own copy."""

from __future__ import annotations

import gc
from dataclasses import replace
from datetime import UTC, datetime

from responder.domain import Alert, Transition, tag_map
from responder.pipeline.contexts import AlertContexts

_TAGS = ("env:prod", "team:payments")
_BASE = Alert(
    source_id="0",
    monitor_id="148275309",
    monitor_name="High Payment Failure Rate",
    title="[Triggered] High Payment Failure Rate",
    transition=Transition.TRIGGERED,
    alert_type="error",
    priority="P1",
    status_text=None,
    query=None,
    metric=None,
    scope="",
    cycle_key="7716548234000001111",
    aggreg_key=None,
    hostname=None,
    tags=_TAGS,
    tag_map=tag_map(_TAGS),
    message=None,
    link=None,
    snapshot=None,
    date=datetime(2026, 11, 18, 12, 0, tzinfo=UTC),
    org_id=None,
    org_name=None,
    event_type=None,
    template="responder",
)


def context(n: int) -> Alert:
    return replace(_BASE, source_id=str(n), tag_map=tag_map(_TAGS))


def test_a_context_comes_back_as_it_was_put() -> None:
    contexts = AlertContexts()
    contexts.put(1, context(1))
    assert contexts.take([1, 2]) == {1: context(1)}


def test_each_take_is_a_copy_a_template_cannot_change_for_the_next_run() -> None:
    contexts = AlertContexts()
    contexts.put(1, context(1))
    first = contexts.take([1])[1]
    first.tag_map["env"] = "staging"
    assert contexts.take([1])[1] == context(1)


def test_the_oldest_entries_go_first_past_the_capacity() -> None:
    contexts = AlertContexts(capacity=3)
    for n in range(5):
        contexts.put(n, context(n))
    assert sorted(contexts.take(range(5))) == [2, 3, 4]


def test_a_full_cache_adds_nothing_for_the_garbage_collector_to_walk() -> None:
    # Alerts with their tag dicts would each be tracked: 20,000 of them made full
    # collections pause the whole process (acknowledgements included) for tens of
    # milliseconds. As objects, 5,000 alerts would add over 15,000 tracked objects; the
    # margin is for whatever else the process does meanwhile.
    contexts = AlertContexts(capacity=5_000)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5_000):
        contexts.put(n, context(n))
    gc.collect()
    assert len(gc.get_objects()) - before < 1_000
