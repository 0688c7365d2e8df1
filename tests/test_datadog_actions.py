"""The datadog.* actions as a whole: wiring, errors, retries, secrets, shared helpers.

Every action runs with the real datadog-api-client against the local fake. The per-action
behaviour lives in test_datadog_incident.py, _notebook.py and _workflow.py, which import the
helpers defined here.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from integrations.datadog import datadog_actions, default_app_url
from integrations.datadog.client import (
    UNSTABLE_OPERATIONS,
    DatadogApi,
    build_configuration,
    enabled_unstable_operations,
)
from integrations.datadog.markdown import escape, fenced, link, runs_list
from integrations.datadog.monitor_query import graph_query
from responder.actions import Action, ActionError, ActionResult
from tests.contexts import RECOVERED, RENOTIFY
from tests.contexts import action_context as ctx
from tests.fakes.datadog import FakeDatadog

API_KEY = "dd-api-0123456789-SECRETAPIKEY"
APP_KEY = "dd-app-9876543210-SECRETAPPKEY"
APP_URL = "https://app.datadoghq.com"
WORKFLOW = "ccf73164-1998-4785-a7a3-8d06c7e5f558"
NAMES = [
    "datadog.incident",
    "datadog.incident_resolve",
    "datadog.incident_timeline",
    "datadog.notebook",
    "datadog.notebook_resolve",
    "datadog.workflow",
]


def make_actions(
    fake: FakeDatadog,
    *,
    api_key: str | None = API_KEY,
    app_key: str | None = APP_KEY,
    timeout: float = 5.0,
) -> dict[str, Action]:
    made = datadog_actions(
        api_key=api_key, app_key=app_key, base_url=fake.base_url, app_url=APP_URL, timeout=timeout
    )
    return {action.name: action for action in made}


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


@pytest.fixture
def dd(fake: FakeDatadog) -> dict[str, Action]:
    return make_actions(fake)


def run(
    dd: dict[str, Action], name: str, params: Mapping[str, Any] | None = None, **kw: Any
) -> ActionResult:
    return dd[name].execute(ctx(name, params, **kw))


def failure(call: Callable[[], object]) -> ActionError:
    with pytest.raises(ActionError) as info:
        call()
    return info.value


# -- wiring and configuration -----------------------------------------------------------------


def test_the_factory_makes_every_action_with_plain_params(dd: dict[str, Action]) -> None:
    assert sorted(dd) == NAMES
    assert all(a.configured and a.markup == "plain" for a in dd.values())
    assert {n for n, a in dd.items() if a.wants_runs} == {
        "datadog.notebook",
        "datadog.notebook_resolve",
    }


@pytest.mark.parametrize(
    ("api_key", "app_key"), [(None, APP_KEY), (API_KEY, None), (None, None), ("  ", APP_KEY)]
)
def test_without_both_keys_nothing_is_configured(
    fake: FakeDatadog, api_key: str | None, app_key: str | None
) -> None:
    unconfigured = make_actions(fake, api_key=api_key, app_key=app_key)
    assert not any(a.configured for a in unconfigured.values())
    described = unconfigured["datadog.incident"].describe(ctx("datadog.incident"))
    assert described["method"] == "CreateIncident"
    assert described["title"].startswith("High Payment Failure Rate [rsp-")
    assert (
        unconfigured["datadog.workflow"]
        .describe(ctx("datadog.workflow", {"workflow_id": WORKFLOW}))["payload"]["responder_key"]
        .startswith("rsp-")
    )
    error = failure(lambda: run(unconfigured, "datadog.incident"))
    assert error.retryable is False
    assert fake.calls == []


def test_exactly_the_unstable_operations_we_call_are_enabled() -> None:
    config = build_configuration(api_key="a", app_key="b", base_url="http://x", timeout=1)
    assert (
        enabled_unstable_operations(config)
        == UNSTABLE_OPERATIONS
        == {
            "v2.create_incident",
            "v2.search_incidents",
            "v2.update_incident",
            "v2.create_incident_attachment",
            "v2.list_incident_attachments",
        }
    )


def test_the_sdk_is_set_to_one_attempt_at_our_host() -> None:
    config = build_configuration(
        api_key="a", app_key="b", base_url="http://127.0.0.1:9/", timeout=2.5
    )
    assert config.host == "http://127.0.0.1:9"
    assert config.enable_retry is False
    assert config.retry_policy.total is False
    assert config.request_timeout == 2.5


def test_environment_keys_do_not_override_ours(
    fake: FakeDatadog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK reads DD_* from the environment when a key is missing; ours must always win.
    monkeypatch.setenv("DD_API_KEY", "from-env")
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    result = run(make_actions(fake), "datadog.incident")
    assert result.response["id"]
    assert make_actions(fake, api_key=None)["datadog.incident"].configured is False


@pytest.mark.parametrize(
    ("site", "url"),
    [
        ("datadoghq.com", "https://app.datadoghq.com"),
        ("datadoghq.eu", "https://app.datadoghq.eu"),
        ("us3.datadoghq.com", "https://us3.datadoghq.com"),
        ("ap1.datadoghq.com", "https://ap1.datadoghq.com"),
    ],
)
def test_default_app_url(site: str, url: str) -> None:
    assert default_app_url(site) == url


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "reset", "expected"),
    [
        ("3", None, 3.0),
        (None, "7", 7.0),
        ("2", "7", 2.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "7", 7.0),
        (None, None, None),
    ],
)
def test_rate_limit_is_retryable_after_the_wait_datadog_names(
    fake: FakeDatadog,
    dd: dict[str, Action],
    retry_after: str | None,
    reset: str | None,
    expected: float | None,
) -> None:
    fake.fail_next("CreateIncident", 429, retry_after=retry_after, rate_limit_reset=reset)
    error = failure(lambda: run(dd, "datadog.incident"))
    assert (error.retryable, error.retry_after) == (True, expected)
    assert error.response == {"status": 429, "errors": ["Too many requests"]}
    assert len(fake.calls_to("CreateIncident")) == 1
    assert fake.incidents() == []


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize(
    ("action", "route"),
    [
        ("datadog.incident", "CreateIncident"),
        ("datadog.notebook", "CreateNotebook"),
        ("datadog.workflow", "CreateWorkflowInstance"),
    ],
)
def test_server_errors_are_retryable_after_one_request(
    fake: FakeDatadog, dd: dict[str, Action], status: int, action: str, route: str
) -> None:
    fake.fail_next(route, status)
    error = failure(
        lambda: run(dd, action, {"workflow_id": WORKFLOW} if "workflow" in action else {})
    )
    assert error.retryable is True
    assert error.response["status"] == status
    assert len(fake.calls_to(route)) == 1


def test_a_timeout_is_retryable_after_one_request(fake: FakeDatadog) -> None:
    quick = make_actions(fake, timeout=0.3)
    fake.delay_next("CreateNotebook", 1.0)
    error = failure(lambda: run(quick, "datadog.notebook"))
    assert error.retryable is True
    assert error.response["error"] == "timeout"
    assert "timeout" in error.message
    assert len(fake.calls_to("CreateNotebook")) == 1


def test_a_refused_connection_is_retryable(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    fake.down()
    error = failure(lambda: run(dd, "datadog.workflow", {"workflow_id": WORKFLOW}))
    assert error.retryable is True
    assert error.response["error"] == "connection_error"


def test_a_dropped_connection_is_retryable_and_not_retried() -> None:
    # A server that accepts and hangs up at once: urllib3's default policy would reconnect
    # and resend (a GET three more times); ours must make exactly one attempt.
    accepted: list[int] = []
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.getsockname()[1]}"
        api = DatadogApi(build_configuration(api_key="a", app_key="b", base_url=base, timeout=2))
        error = failure(lambda: api.get_notebook(1))
        assert error.retryable is True
        assert error.response["error"] == "connection_error"
        assert len(accepted) == 1
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.mark.parametrize(
    ("status", "errors"),
    [
        (400, ["Invalid query"]),
        (401, ["Unauthorized"]),
        (403, ["Forbidden"]),
        (404, [{"code": "WORKFLOW_NOT_FOUND", "detail": "workflow x not found"}]),
    ],
)
def test_client_errors_are_permanent_with_datadogs_errors(
    fake: FakeDatadog, dd: dict[str, Action], status: int, errors: list[Any]
) -> None:
    fake.fail_next("CreateWorkflowInstance", status, errors=errors)
    error = failure(lambda: run(dd, "datadog.workflow", {"workflow_id": WORKFLOW}))
    assert error.retryable is False and error.retry_after is None
    assert error.response == {"status": status, "errors": errors}
    assert f"HTTP {status}" in error.message
    assert len(fake.calls_to("CreateWorkflowInstance")) == 1


def test_wrong_keys_are_permanent(fake: FakeDatadog) -> None:
    error = failure(lambda: run(make_actions(fake, app_key="wrong"), "datadog.incident"))
    assert (error.retryable, error.response) == (False, {"status": 403, "errors": ["Forbidden"]})


def test_an_unknown_workflow_is_permanent(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    error = failure(lambda: run(dd, "datadog.workflow", {"workflow_id": "nope"}))
    assert error.retryable is False
    assert error.response["status"] == 404
    assert error.response["errors"][0]["code"] == "WORKFLOW_NOT_FOUND"
    assert fake.instances() == []


def test_an_unreadable_answer_is_retryable_and_the_retry_adopts(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    # The create happened; the retry's search finds it rather than declaring a second one.
    fake.garble_next("CreateIncident")
    error = failure(lambda: run(dd, "datadog.incident"))
    assert error.retryable is True
    assert error.response["error"] == "bad_body"
    adopted = run(dd, "datadog.incident", attempt=2)
    assert adopted.response["adopted"] is True
    assert len(fake.incidents()) == 1


# -- secrets --------------------------------------------------------------------------------


def test_no_key_ever_leaks(
    fake: FakeDatadog, dd: dict[str, Action], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    errors: list[ActionError] = []
    fake.finish_instances("SUCCEEDED", after_polls=0)

    def attempt(
        name: str, params: Mapping[str, Any] | None = None, **kw: Any
    ) -> ActionResult | None:
        seen.append(repr(dd[name].describe(ctx(name, params, **kw))))
        try:
            result = run(dd, name, params, **kw)
        except ActionError as exc:
            errors.append(exc)
            return None
        seen.extend([repr(result.response), repr(result.refs), repr(result.skipped_reason)])
        return result

    wf = {"workflow_id": WORKFLOW, "inputs": {"replicas": 6}}
    created = attempt("datadog.incident")
    assert created is not None
    attempt("datadog.incident_timeline", alert=RENOTIFY, parent=created.response)
    attempt("datadog.incident_resolve", alert=RECOVERED, parent=created.response)
    notebook = attempt(
        "datadog.notebook", runs=[{"action": "slack.post", "state": "failed", "error": "x"}]
    )
    assert notebook is not None
    attempt("datadog.notebook_resolve", alert=RECOVERED, parent=notebook.response)
    started = attempt("datadog.workflow", wf)
    assert started is not None
    attempt("datadog.workflow", wf, previous=started.response, attempt=2)
    attempt("datadog.incident", uncertain=True)
    # Every failure path, including Datadog answering with our own key in its message.
    echo = [f"invalid key {API_KEY} / {APP_KEY}"]
    failures: list[tuple[Callable[[], None], str, dict[str, Any] | None, int]] = [
        (
            lambda: fake.fail_next("CreateIncident", 429, rate_limit_reset="2"),
            "datadog.incident",
            None,
            1,
        ),
        (lambda: fake.fail_next("CreateIncident", 500), "datadog.incident", None, 1),
        (lambda: fake.fail_next("CreateIncident", 400, errors=echo), "datadog.incident", None, 1),
        (lambda: fake.fail_next("CreateNotebook", 403, errors=echo), "datadog.notebook", None, 1),
        (lambda: fake.fail_next("CreateWorkflowInstance", 404), "datadog.workflow", wf, 1),
        (lambda: fake.fail_next("SearchIncidents", 503, errors=echo), "datadog.incident", None, 2),
        (lambda: fake.garble_next("CreateIncident"), "datadog.incident", None, 1),
        (lambda: fake.delay_next("CreateIncident", 1.0), "datadog.incident", None, 1),
        (fake.down, "datadog.incident", None, 1),
    ]
    quick = make_actions(fake, timeout=0.3)
    for arrange, name, params, attempt_number in failures:
        arrange()
        with pytest.raises(ActionError) as info:
            quick[name].execute(ctx(name, params, attempt=attempt_number))
        errors.append(info.value)
    fake.up()
    errors.append(failure(lambda: run(make_actions(fake, app_key="wrong"), "datadog.incident")))
    for error in errors:
        seen += [str(error), repr(error), error.message, repr(error.response)]
        # Nothing chained either: SDK and urllib3 exceptions hold the request headers.
        assert error.__cause__ is None and error.__context__ is None
    assert len(errors) == len(failures) + 1
    for text in [*seen, caplog.text, repr(fake.calls)]:
        for secret in (API_KEY, APP_KEY, "SECRETAPIKEY", "SECRETAPPKEY"):
            assert secret not in text


# -- shared pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "graph", "threshold"),
    [
        (
            "avg(last_10m):( sum:payment.completions{success:false}.as_count() / "
            "sum:payment.completions{*}.as_count() ) * 100 > 5",
            "( sum:payment.completions{success:false}.as_count() / "
            "sum:payment.completions{*}.as_count() ) * 100",
            "5",
        ),
        (
            "avg(last_5m):p95:api.response_time{env:prod} by {endpoint} > 2000",
            "p95:api.response_time{env:prod} by {endpoint}",
            "2000",
        ),
        (
            "avg(last_5m):sum:fraud.check{env:prod}.as_count() < 1",
            "sum:fraud.check{env:prod}.as_count()",
            "1",
        ),
        ("change(avg(last_5m),last_5m):avg:system.load.1{*} >= 0.5", "avg:system.load.1{*}", "0.5"),
        (
            "avg(last_4h):anomalies(avg:system.cpu.user{*}, 'basic', 2) >= 1",
            "anomalies(avg:system.cpu.user{*}, 'basic', 2)",
            "1",
        ),
        ("avg:system.load.1{host:a}", "avg:system.load.1{host:a}", None),
    ],
)
def test_monitor_queries_become_graphable(query: str, graph: str, threshold: str | None) -> None:
    found = graph_query(query)
    assert found is not None
    assert (found.kind, found.query, found.threshold) == ("metric", graph, threshold)
    assert found.marker == (f"y = {threshold}" if threshold else None)


def test_log_monitor_queries_become_log_searches() -> None:
    found = graph_query(
        'logs("service:payment status:error").index("*").rollup("count").last("5m") > 100'
    )
    assert found is not None
    assert (found.kind, found.query, found.threshold) == (
        "logs",
        "service:payment status:error",
        "100",
    )


@pytest.mark.parametrize(
    "query",
    [
        None,
        "",
        "12345 && 67890",
        '"http.can_connect".over("*").by("host").last(2).count_by_status()',
    ],
)
def test_other_monitor_queries_are_not_graphed(query: str | None) -> None:
    assert graph_query(query) is None


def test_markdown_escaping_makes_alert_text_inert() -> None:
    hostile = "[click](javascript:alert(1)) ![img](http://x) # heading @oncall <b>"
    escaped = escape(hostile)
    assert "[click](" not in escaped and "![img](" not in escaped
    assert "@oncall" not in escaped and "@\u200boncall" in escaped
    assert escape("a\n\n# b") == "a \\# b"
    assert len(escape("x" * 1000, 50)) == 50
    block = fenced("one ``` two @team")
    assert block.startswith("````\n") and block.endswith("\n````")
    assert "@team" not in block
    assert link("Event", "javascript:alert(1)") is None
    assert link("Ev]ent", "https://x/a b)c") == "[Ev\\]ent](https://x/a%20b%29c)"


def test_runs_list_shows_what_was_done() -> None:
    runs = [
        {
            "action": "slack.post",
            "playbook": "payments",
            "state": "succeeded",
            "transition": "Triggered",
            "finished_at": "2026-11-22T22:00:03+00:00",
            "error": None,
        },
        {
            "action": "pagerduty.trigger",
            "state": "failed",
            "error": "HTTP 400 [x](y)",
            "finished_at": None,
        },
    ]
    text = runs_list(runs)
    assert text.splitlines() == [
        "- 22:00:03 UTC · `slack.post` succeeded (payments) on Triggered",
        "- pending · `pagerduty.trigger` failed: HTTP 400 \\[x\\]\\(y\\)",
    ]
    assert runs_list([]) == "_No other actions recorded yet._"
