"""A retry after a lost answer finds what its attempt made, however much else was made since.

Each action's first attempt reaches the vendor but its answer is lost (the fake does the work,
then garbles or delays the answer past the client's timeout). Hundreds of other objects are
then made, the retry runs as an uncertain attempt, and exactly one object of ours must exist:
adopted when it was made, made once when it was not. The look-up pages the vendor's list as
the vendor pages it; the fakes count the pages asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from integrations.datadog import incident as incident_module
from integrations.datadog.base import run_marker
from responder.actions import Action, ActionResult
from tests.contexts import RENOTIFY, incident_view
from tests.contexts import action_context as ctx
from tests.fakes.datadog import FakeDatadog
from tests.fakes.slack import FakeSlack
from tests.test_datadog_actions import API_KEY, APP_KEY, WORKFLOW, failure, make_actions, run
from tests.test_slack_actions import CHANNELS, PAY, TOKEN, actions

OTHERS = 300
OPENED = incident_view().opened_at  # when the incident of every run here opened
RUN = "7"  # the run whose answer is lost


@pytest.fixture
def datadog() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels=CHANNELS) as server:
        yield server


def marker(action: str) -> str:
    return run_marker(ctx(action, run_id=RUN))


# -- datadog.incident ---------------------------------------------------------------------------


def test_an_incident_is_found_past_hundreds_declared_since(datadog: FakeDatadog) -> None:
    datadog.garble_next("CreateIncident")
    assert failure(lambda: run(make_actions(datadog), "datadog.incident")).retryable is True
    for n in range(OTHERS):
        datadog.add_incident(f"Disk full on db-{n} [rsp-other{n:07d}]")

    retry = run(make_actions(datadog), "datadog.incident", uncertain=True)

    ours = [i for i in datadog.incidents() if f"[{marker('datadog.incident')}]" in i.title]
    assert len(ours) == 1 and len(datadog.incidents()) == OTHERS + 1
    assert retry.response["adopted"] is True
    assert retry.refs["datadog_incident"]["id"] == ours[0].id
    # Newest first, 100 a page: ours, the oldest, is the first of the fourth page.
    searches = datadog.calls_to("SearchIncidents")
    assert [c.query["page[offset]"] for c in searches] == ["0", "100", "200", "300"]
    assert {(c.query["page[size]"], c.query["sort"]) for c in searches} == {("100", "-created")}
    assert retry.response["lookup"] == {"pages": 4, "examined": 301, "complete": True}


def test_an_incident_never_declared_is_declared_once(datadog: FakeDatadog) -> None:
    for n in range(OTHERS):
        datadog.add_incident(f"Disk full on db-{n} [rsp-other{n:07d}]")

    retry = run(make_actions(datadog), "datadog.incident", attempt=2)

    assert retry.response["adopted"] is False
    ours = [i for i in datadog.incidents() if f"[{marker('datadog.incident')}]" in i.title]
    assert len(ours) == 1
    # The whole list, to its short last page: provably none of ours before.
    assert len(datadog.calls_to("SearchIncidents")) == 4
    assert retry.response["lookup"] == {"pages": 4, "examined": 300, "complete": True}
    assert "note" not in retry.response


def test_the_incident_search_stops_at_incidents_older_than_ours(datadog: FakeDatadog) -> None:
    for n in range(250):
        datadog.add_incident(f"Old outage {n}", created=OPENED - timedelta(days=1, minutes=n))
    for n in range(30):
        datadog.add_incident(f"New outage {n}")

    retry = run(make_actions(datadog), "datadog.incident", attempt=2)

    # 30 newer ones, then the first declared before the incident opened: no need to go on.
    assert retry.response["lookup"] == {"pages": 1, "examined": 31, "complete": True}
    assert retry.response["adopted"] is False
    assert len(datadog.incidents()) == 281


def test_an_incident_search_cut_short_says_so(
    datadog: FakeDatadog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incident_module, "SEARCH_PAGES", 2)
    for n in range(OTHERS):
        datadog.add_incident(f"Disk full on db-{n}")

    retry = run(make_actions(datadog), "datadog.incident", attempt=2)

    assert retry.response["lookup"] == {"pages": 2, "examined": 200, "complete": False}
    assert "looked through 200 incidents in 2 pages" in retry.response["note"]
    assert "may be a second incident" in retry.response["note"]
    assert retry.response["adopted"] is False


# -- datadog.notebook ---------------------------------------------------------------------------


def test_a_notebook_is_found_among_hundreds_with_its_marker(datadog: FakeDatadog) -> None:
    datadog.delay_next("CreateNotebook", 1.0)
    quick = make_actions(datadog, timeout=0.3)
    assert failure(lambda: run(quick, "datadog.notebook")).retryable is True
    (original,) = datadog.notebooks()
    tag = f"[{marker('datadog.notebook')}]"
    for n in range(OTHERS):
        # Others, and copies of ours: a search by the marker finds those as well.
        name = f"Clone {n} of {original.name}" if n % 2 else f"RCA: db-{n}"
        datadog.add_notebook(name[:80])

    retry = run(make_actions(datadog), "datadog.notebook", uncertain=True)

    assert retry.response["adopted"] is True
    assert retry.refs["datadog_notebook"]["id"] == original.id
    assert sum(tag in n.name for n in datadog.notebooks()) == OTHERS // 2 + 1
    (search,) = datadog.calls_to("ListNotebooks")
    assert search.query["query"] == marker("datadog.notebook")
    assert (search.query["sort_field"], search.query["sort_dir"]) == ("created", "asc")


def test_a_notebook_never_made_is_made_once_after_every_page(datadog: FakeDatadog) -> None:
    for n in range(250):
        # They carry our marker, not as our name does: all read, none taken for ours.
        datadog.add_notebook(f"Notes on {marker('datadog.notebook')} #{n}")
    for n in range(OTHERS):
        datadog.add_notebook(f"RCA: db-{n}")

    retry = run(make_actions(datadog), "datadog.notebook", attempt=2)

    assert retry.response["adopted"] is False
    tag = f"[{marker('datadog.notebook')}]"
    assert sum(tag in n.name for n in datadog.notebooks()) == 1
    starts = [c.query["start"] for c in datadog.calls_to("ListNotebooks")]
    assert starts == ["0", "100", "200"]
    assert retry.response["lookup"] == {"pages": 3, "examined": 250, "complete": True}


# -- datadog.workflow ---------------------------------------------------------------------------


def start(dd: dict[str, Action], **kw: Any) -> ActionResult:
    return run(dd, "datadog.workflow", {"workflow_id": WORKFLOW}, **kw)


def ours_started(datadog: FakeDatadog) -> list[str]:
    key = marker("datadog.workflow")
    return [i.id for i in datadog.instances() if i.payload.get("responder_key") == key]


def test_a_workflow_instance_is_found_past_hundreds_started_since(datadog: FakeDatadog) -> None:
    datadog.garble_next("CreateWorkflowInstance")
    assert failure(lambda: start(make_actions(datadog))).retryable is True
    for n in range(OTHERS):
        datadog.add_instance(WORKFLOW, {"responder_key": f"rsp-other{n:07d}"})

    retry = start(make_actions(datadog), uncertain=True)

    (ours,) = ours_started(datadog)
    assert len(datadog.instances()) == OTHERS + 1
    assert retry.response["adopted"] is True
    assert retry.response["instance_id"] == ours
    lists = datadog.calls_to("ListWorkflowInstances")
    assert [c.query["page[number]"] for c in lists] == ["0", "1", "2", "3"]
    assert {c.query["page[size]"] for c in lists} == {"100"}
    assert len(datadog.calls_to("GetWorkflowInstance")) == OTHERS + 1
    assert retry.response["lookup"] == {"pages": 4, "examined": 301, "complete": True}


def test_a_workflow_never_started_starts_once(datadog: FakeDatadog) -> None:
    for n in range(OTHERS):
        datadog.add_instance(WORKFLOW, {"responder_key": f"rsp-other{n:07d}"})

    retry = start(make_actions(datadog), attempt=2)

    assert retry.response["adopted"] is False
    assert len(ours_started(datadog)) == 1
    assert retry.response["lookup"] == {"pages": 4, "examined": 300, "complete": True}


def test_instances_older_than_the_incident_are_not_read(datadog: FakeDatadog) -> None:
    for n in range(200):
        datadog.add_instance(WORKFLOW, {"n": n}, started=OPENED - timedelta(hours=2, minutes=n))
    for n in range(20):
        datadog.add_instance(WORKFLOW, {"n": n})

    retry = start(make_actions(datadog), attempt=2)

    assert retry.response["lookup"] == {"pages": 1, "examined": 21, "complete": True}
    assert len(datadog.calls_to("GetWorkflowInstance")) == 20  # the newer ones only
    assert len(ours_started(datadog)) == 1


# -- slack.reply and slack.post -----------------------------------------------------------------


def reply(slack: dict[str, Action], root: ActionResult, run_id: str, **kw: Any) -> ActionResult:
    params = {"channel": "#payments-alerts"}
    context = ctx("slack.reply", params, alert=RENOTIFY, run_id=run_id, parent=root.response, **kw)
    return slack["slack.reply"].execute(context)


def run_of(metadata: dict[str, Any] | None) -> object:
    return (metadata or {}).get("event_payload", {}).get("run_id")


def runs_replied(slack: FakeSlack, thread_ts: str, run_id: str) -> list[str]:
    return [m.ts for m in slack.replies(PAY, thread_ts) if run_of(m.metadata) == run_id]


def test_a_reply_is_found_deep_in_a_busy_thread(slack: FakeSlack) -> None:
    posting = actions(slack)
    root = posting["slack.post"].execute(
        ctx("slack.post", {"channel": "#payments-alerts"}, run_id="root")
    )
    thread = root.response["ts"]
    for n in range(OTHERS):
        reply(posting, root, f"before-{n}")
    slack.delay_next("chat.postMessage", 1.0)
    assert failure(lambda: reply(actions(slack, timeout=0.3), root, RUN)).retryable is True
    for n in range(OTHERS):
        reply(posting, root, f"after-{n}")

    retry = reply(actions(slack), root, RUN, uncertain=True)

    (ours,) = runs_replied(slack, thread, RUN)
    assert retry.response["adopted"] is True
    assert retry.response["ts"] == ours
    assert len(slack.replies(PAY, thread)) == 2 * OTHERS + 1
    # The root and 300 replies come first, oldest first: ours is on the second page.
    pages = slack.calls_to("conversations.replies")
    assert len(pages) == 2 and "cursor" not in pages[0] and pages[1]["cursor"]
    assert {(p["ts"], p["limit"], p["include_all_metadata"]) for p in pages} == {
        (thread, "200", "1")
    }
    assert retry.response["lookup"] == {"pages": 2, "examined": 400, "complete": True}


def test_a_reply_never_posted_is_posted_once_after_the_whole_thread(slack: FakeSlack) -> None:
    posting = actions(slack)
    root = posting["slack.post"].execute(
        ctx("slack.post", {"channel": "#payments-alerts"}, run_id="root")
    )
    for n in range(OTHERS):
        reply(posting, root, f"other-{n}")

    retry = reply(actions(slack), root, RUN, attempt=2)

    assert retry.response["adopted"] is False
    assert len(runs_replied(slack, root.response["ts"], RUN)) == 1
    assert len(slack.calls_to("conversations.replies")) == 2  # 301 messages, 200 a page
    assert retry.response["lookup"] == {"pages": 2, "examined": 301, "complete": True}


def test_a_root_post_is_found_past_hundreds_of_channel_messages(slack: FakeSlack) -> None:
    slack.delay_next("chat.postMessage", 1.0)
    quick = actions(slack, timeout=0.3)
    post = {"channel": "#payments-alerts"}
    assert failure(lambda: quick["slack.post"].execute(ctx("slack.post", post))).retryable
    posting = actions(slack)
    for n in range(OTHERS):
        posting["slack.post"].execute(ctx("slack.post", post, run_id=f"other-{n}"))

    retry = actions(slack)["slack.post"].execute(ctx("slack.post", post, uncertain=True))

    ours = [m for m in slack.root_messages(PAY) if run_of(m.metadata) == RUN]
    assert len(ours) == 1 and len(slack.root_messages(PAY)) == OTHERS + 1
    assert retry.response["adopted"] is True and retry.response["ts"] == ours[0].ts
    # Newest first, 200 a page: ours, the oldest, is on the second page.
    assert len(slack.calls_to("conversations.history")) == 2
    assert retry.response["lookup"] == {"pages": 2, "examined": 301, "complete": True}
