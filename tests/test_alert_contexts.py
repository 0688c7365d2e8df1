"""The runner's cache of recently planned alerts: bounded, and each taker gets its own copy."""

from __future__ import annotations

import gc

from responder.pipeline.contexts import AlertContexts


def context(n: int) -> dict[str, object]:
    return {"id": str(n), "tags": {"env": "prod", "team": "payments"}, "tag_list": ["env:prod"]}


def test_a_context_comes_back_as_it_was_put() -> None:
    contexts = AlertContexts()
    contexts.put(1, context(1))
    assert contexts.take([1, 2]) == {1: context(1)}


def test_each_take_is_a_copy_a_template_cannot_change_for_the_next_run() -> None:
    contexts = AlertContexts()
    contexts.put(1, context(1))
    first = contexts.take([1])[1]
    first["tags"]["env"] = "staging"
    assert contexts.take([1])[1] == context(1)


def test_the_oldest_entries_go_first_past_the_capacity() -> None:
    contexts = AlertContexts(capacity=3)
    for n in range(5):
        contexts.put(n, context(n))
    assert sorted(contexts.take(range(5))) == [2, 3, 4]


def test_a_full_cache_adds_nothing_for_the_garbage_collector_to_walk() -> None:
    # Nested dicts would each be tracked: 20,000 of them made full collections pause the
    # whole process (acknowledgements included) for tens of milliseconds.
    # As dicts, 5,000 contexts would add 15,000 tracked objects; the margin is for whatever
    # else the process does meanwhile.
    contexts = AlertContexts(capacity=5_000)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5_000):
        contexts.put(n, context(n))
    gc.collect()
    assert len(gc.get_objects()) - before < 1_000
