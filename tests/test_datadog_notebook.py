"""datadog.notebook and datadog.notebook_resolve against the fake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.datadog import NotebookParams
from responder.actions import Action, ActionResult, FollowUp
from responder.domain import Transition
from tests.contexts import RECOVERED, TRIGGERED, sample_alert, stale_event, stale_incident
from tests.contexts import action_context as ctx
from tests.contexts import incident_view as incident
from tests.fakes.datadog import FakeDatadog
from tests.test_datadog_actions import (
    API_KEY,
    APP_KEY,
    WORKFLOW,
    failure,
    make_actions,
    run,
)

RUNS = [
    {
        "action": "slack.post",
        "playbook": "payments",
        "state": "succeeded",
        "transition": "Triggered",
        "finished_at": "2026-11-22T22:00:02+00:00",
        "error": None,
    },
    {
        "action": "datadog.incident",
        "playbook": "payments",
        "state": "succeeded",
        "transition": "Triggered",
        "finished_at": "2026-11-22T22:00:03+00:00",
        "error": None,
    },
]
RELATED = [
    {"title": "Gateway errors", "query": "service:payment-gateway status:error", "kind": "logs"},
    {
        "title": "DB latency",
        "query": "avg:postgresql.query.time{service:payments}",
        "kind": "metric",
    },
]


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


@pytest.fixture
def dd(fake: FakeDatadog) -> dict[str, Action]:
    return make_actions(fake)


def create(dd: dict[str, Action], params: dict[str, Any] | None = None, **kw: Any) -> ActionResult:
    kw.setdefault("runs", RUNS)
    return run(dd, "datadog.notebook", params, **kw)


def resolve(dd: dict[str, Action], parent: Any, **kw: Any) -> ActionResult:
    kw.setdefault("runs", RUNS)
    return run(dd, "datadog.notebook_resolve", alert=RECOVERED, parent=parent, **kw)


def definitions(fake: FakeDatadog) -> list[dict[str, Any]]:
    (notebook,) = fake.notebooks()
    return [cell["attributes"]["definition"] for cell in notebook.cells]


# -- datadog.notebook ------------------------------------------------------------------------------


def test_notebook_holds_summary_graph_signals_and_timeline(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    refs = {
        "datadog_incident": {
            "id": "u",
            "public_id": 7,
            "url": "https://app.datadoghq.com/incidents/7",
        }
    }
    result = create(dd, {"related": RELATED}, view=incident(refs=refs))
    (notebook,) = fake.notebooks()
    assert notebook.name.startswith("RCA: High Payment Failure Rate [rsp-")
    summary, graph, logs, metric, timeline = definitions(fake)

    assert summary["type"] == "markdown"
    assert summary["text"].startswith("## High Payment Failure Rate")
    assert "[Monitor](https://app.datadoghq.com/monitors/148275309)" in summary["text"]
    assert (
        "[Event](https://app.datadoghq.com/event/event?id=7716548234011234567)" in summary["text"]
    )
    assert "[Datadog incident](https://app.datadoghq.com/incidents/7)" in summary["text"]

    assert graph["type"] == "timeseries"
    assert graph["requests"] == [
        {
            "q": "( sum:payment.completions{success:false}.as_count() / "
            "sum:payment.completions{*}.as_count() ) * 100",
            "display_type": "line",
        }
    ]
    assert graph["markers"] == [{"value": "y = 5", "display_type": "error dashed"}]

    assert (logs["type"], logs["query"], logs["title"]) == (
        "log_stream",
        "service:payment-gateway status:error",
        "Gateway errors",
    )
    assert metric["type"] == "timeseries"
    assert metric["requests"][0]["q"] == "avg:postgresql.query.time{service:payments}"

    assert timeline["text"].startswith("## Timeline")
    assert "- 22:00:02 UTC · `slack.post` succeeded (payments) on Triggered" in timeline["text"]
    assert "`datadog.incident` succeeded" in timeline["text"]

    ref = {"id": notebook.id, "url": f"https://app.datadoghq.com/notebook/{notebook.id}"}
    assert result.refs == {"datadog_notebook": ref}
    assert result.response == {**ref, "name": notebook.name, "cells": 5, "adopted": False}


def test_notebook_time_starts_before_the_trigger_and_stays_live(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    create(dd, {"window_before": "2h"})
    (notebook,) = fake.notebooks()
    opened = TRIGGERED.date
    assert datetime.fromisoformat(notebook.time["start"]) == opened - timedelta(hours=2)
    assert datetime.fromisoformat(notebook.time["end"]) >= opened
    assert notebook.time["live"] is True
    assert notebook.extra["metadata"] == {"type": "investigation"}


def test_a_long_title_is_cut_to_datadogs_limit(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    create(dd, {"title": "RCA: " + "very long monitor name " * 10})
    (notebook,) = fake.notebooks()
    assert len(notebook.name) == 80
    assert re.fullmatch(r"RCA: very long monitor name .*… \[rsp-[0-9a-f]{12}\]", notebook.name)


def test_a_monitor_query_that_cannot_be_graphed_is_shown_as_text(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    composite = replace(TRIGGERED, query="148275309 && 148275310")
    create(dd, alert=composite)
    kinds = [d["type"] for d in definitions(fake)]
    assert kinds == ["markdown", "markdown"]
    assert (
        "cannot be graphed here:\n\n```\n148275309 && 148275310\n```"
        in definitions(fake)[0]["text"]
    )


def test_a_log_monitor_gets_a_log_stream(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    query = 'logs("service:payment status:error").index("*").rollup("count").last("5m") > 100'
    create(dd, alert=replace(TRIGGERED, query=query))
    graph = definitions(fake)[1]
    assert (graph["type"], graph["query"]) == ("log_stream", "service:payment status:error")


def test_uncertain_create_adopts_instead_of_duplicating(fake: FakeDatadog) -> None:
    quick = make_actions(fake, timeout=0.3)
    fake.delay_next("CreateNotebook", 1.0)
    error = failure(lambda: create(quick))
    assert error.retryable is True
    assert len(fake.notebooks()) == 1
    retry = create(quick, uncertain=True)
    assert retry.response["adopted"] is True
    (notebook,) = fake.notebooks()
    assert retry.refs["datadog_notebook"]["id"] == notebook.id
    (search,) = fake.calls_to("ListNotebooks")
    assert search.query["query"] in notebook.name and search.query["include_cells"] == "false"


def test_another_runs_notebook_is_not_adopted(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    create(dd, run_id="other")
    assert create(dd, attempt=2).response["adopted"] is False
    assert len(fake.notebooks()) == 2


@pytest.mark.parametrize(
    ("value", "minutes"),
    [(60, 60), ("90", 90), ("90m", 90), ("2h", 120), ("1d", 1440), (" 3H ", 180)],
)
def test_window_before_takes_minutes_or_durations(value: object, minutes: int) -> None:
    assert NotebookParams.model_validate({"window_before": value}).window_before == minutes


@pytest.mark.parametrize(
    "params",
    [
        {"window_before": "soon"},
        {"window_before": 0},
        {"window_before": "8d"},
        {"window_before": True},
        {"template": "postmortem"},
        {"related": [{"title": "x", "query": "y", "kind": "traces"}]},
        {"related": [{"title": "x", "kind": "metric"}]},
        {"graph": "x"},
    ],
)
def test_notebook_params_are_strict(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NotebookParams.model_validate(params)


def test_describe_summarises_the_cells(dd: dict[str, Action]) -> None:
    described = dd["datadog.notebook"].describe(
        ctx("datadog.notebook", {"related": RELATED}, runs=RUNS)
    )
    assert described["method"] == "CreateNotebook"
    assert [c["type"] for c in described["cells"]] == [
        "markdown",
        "timeseries",
        "log_stream",
        "timeseries",
        "markdown",
    ]
    assert described["cells"][2]["query"] == "service:payment-gateway status:error"


@pytest.mark.parametrize(
    ("transition", "follow"),
    [
        (Transition.RECOVERED, FollowUp("datadog.notebook_resolve", {})),
        (Transition.RENOTIFY, None),
        (Transition.TRIGGERED, None),
    ],
)
def test_follow_ups(dd: dict[str, Action], transition: Transition, follow: FollowUp | None) -> None:
    assert dd["datadog.notebook"].follow_up(transition, {}) == follow


# -- datadog.notebook_resolve --------------------------------------------------------------------


def test_resolution_cell_is_appended_once(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = create(dd).response
    before = [cell["id"] for cell in fake.notebooks()[0].cells]
    first = resolve(dd, parent)
    (notebook,) = fake.notebooks()
    assert [cell["id"] for cell in notebook.cells[:-1]] == before  # kept, with their ids
    text = notebook.markdown()[-1]
    assert text.startswith("## Resolution")
    assert "after 23m (opened " in text
    assert "Acknowledged by: not recorded." in text
    assert "`datadog.incident` succeeded" in text
    assert first.response == {
        "id": notebook.id,
        "url": parent["url"],
        "cells_added": 1,
        "time_to_resolve_seconds": 23 * 60,
    }
    second = resolve(dd, parent, attempt=2)
    assert second.skipped_reason == "the notebook already has a resolution note"
    assert second.response["cells_added"] == 0
    assert fake.notebooks()[0].updates == 1
    assert len(fake.notebooks()[0].cells) == len(before) + 1


def test_resolution_names_who_acknowledged(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    refs = create(dd).refs
    pagerduty = {
        "id": "Q1",
        "url": "https://acme.pagerduty.com/incidents/Q1",
        "acknowledged_by": "Ada @ops",
    }
    resolve(dd, None, view=incident(refs={**refs, "pagerduty": pagerduty}))
    assert "Acknowledged by: Ada @\u200bops." in fake.notebooks()[0].markdown()[-1]


def test_resolve_skips_without_a_notebook(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    result = resolve(dd, None)
    assert result.skipped_reason == "no RCA notebook for this incident"
    assert fake.calls == []
    described = dd["datadog.notebook_resolve"].describe(
        ctx("datadog.notebook_resolve", alert=RECOVERED)
    )
    assert described["skip"] == "no RCA notebook for this incident"


def test_resolving_a_deleted_notebook_is_permanent(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    error = failure(lambda: resolve(dd, {"id": 1, "url": "https://x"}))
    assert error.retryable is False
    assert error.response == {"status": 404, "errors": ["Notebook not found"]}


def test_a_failed_update_is_retried_without_doubling(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    parent = create(dd).response
    fake.fail_next("UpdateNotebook", 503)
    assert failure(lambda: resolve(dd, parent)).retryable is True
    resolve(dd, parent, attempt=2)
    resolve(dd, parent, attempt=3)
    assert sum("## Resolution" in text for text in fake.notebooks()[0].markdown()) == 1


def test_recovery_time_falls_back_to_resolved_at(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = create(dd).response
    view = incident(resolved_at=sample_alert("payment-failure-rate.recovered").date)
    # Not a recovery, so its date is when it fired: the incident's resolved_at is the end.
    run(dd, "datadog.notebook_resolve", alert=TRIGGERED, parent=parent, view=view)
    assert "after 23m" in fake.notebooks()[0].markdown()[-1]


def test_a_stale_resolution_is_not_called_a_recovery(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    parent = create(dd).response
    run(
        dd,
        "datadog.notebook_resolve",
        alert=stale_event(),
        parent=parent,
        view=stale_incident(),
        runs=RUNS,
    )
    text = fake.notebooks()[0].markdown()[-1]
    assert (
        "Resolved as stale at 2026-11-24 03:40:00 UTC (no delivery for 1d, since"
        " 2026-11-23 03:40:00 UTC; opened 2026-11-22 22:00:00 UTC)."
        " Datadog never reported a recovery." in text
    )
    assert "Recovered" not in text
