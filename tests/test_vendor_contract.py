"""The contract every vendor integration keeps, checked for every action of every vendor.

One kit, in the manner of Alertmanager's notify/test: each action runs with its vendor's
real SDK against the local fake, and the fake refuses, stalls or disappears through the one
fault mechanism all fakes share (tests.fakes.server). Whatever the vendor, an action

- turns a 429 into a retryable ActionError that carries the Retry-After it was given;
- turns a 5xx, a refused connection and a timeout into a retryable ActionError;
- turns a refusal of the request itself (a 4xx: invalid, unauthorised, forbidden, not
  found) into a permanent ActionError;
- makes exactly one HTTP attempt per execute and never sleeps (the runner owns retries);
- never lets a secret (token, API key, routing key) into its error, its result, what it
  describes for the audit log, or any log line, even when the vendor echoes the secret back.

The runner builds every audit row of a run from `describe()`, the result and the error: the
kit checks those as the action hands them over, before the runner's redactor could hide a
leak. Adding a vendor means adding one `Vendor` entry to VENDORS, with a case for each of its
actions; `test_every_action_has_a_case` fails until every action is covered.

One test fails on purpose, showing a gap (nothing is xfail, as in test_faults.py):
`test_no_secret_reaches_a_log_line` for Slack. At DEBUG, slack_sdk logs every answer body as
it came, so a Slack answer quoting the token reaches the log unmasked: the SDK's lines go
through stdlib logging, not through the structlog processor that masks secrets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from integrations.datadog import datadog_actions
from integrations.pagerduty import pagerduty_actions
from integrations.slack import slack_actions
from responder.actions import Action, ActionContext, ActionError, ActionResult
from tests.contexts import RECOVERED, RENOTIFY, incident_view
from tests.contexts import action_context as ctx
from tests.fakes.datadog import FakeDatadog
from tests.fakes.pagerduty import USER_EMAIL, FakePagerDuty
from tests.fakes.server import ANY, LocalServer
from tests.fakes.slack import FakeSlack

TIMEOUT = 10.0  # generous: a busy machine must not turn a normal answer into a timeout
QUICK = 0.3  # the client timeout where a stalled answer is the point
STALL = 2.0  # how long a stalled answer takes; well past QUICK

F = TypeVar("F", bound=LocalServer)
Actions = Mapping[str, Action]


@dataclass(frozen=True)
class Case:
    """One way to call an action so that it reaches its vendor (`label` names it in test ids).

    `context` may first run other actions of the vendor (a reply needs its root message);
    the calls it makes happen before any fault is injected.
    """

    label: str
    action: str
    context: Callable[[Actions], ActionContext]


@dataclass(frozen=True)
class Vendor(Generic[F]):
    name: str
    secrets: tuple[str, ...]
    fake: Callable[[], F]  # not started yet; knows `secrets` as the valid credentials
    actions: Callable[[F, float], list[Action]]  # every action, with this client timeout
    cases: tuple[Case, ...]


# -- Slack ----------------------------------------------------------------------------------

SLACK_TOKEN = "xoxb-0000000000-CONTRACTSLACKTOKEN"
SLACK_CHANNEL = {"channel": "#payments-alerts"}


def _slack_root(actions: Actions) -> Mapping[str, Any]:
    return actions["slack.post"].execute(ctx("slack.post", SLACK_CHANNEL)).response


SLACK_STORM = {**SLACK_CHANNEL, "started_at": "2026-11-18T12:00:00+00:00", "incidents": 12}


def _slack_storm(actions: Actions) -> Mapping[str, Any]:
    return actions["slack.storm"].execute(ctx("slack.storm", SLACK_STORM)).response


SLACK: Vendor[FakeSlack] = Vendor(
    name="slack",
    secrets=(SLACK_TOKEN,),
    fake=lambda: FakeSlack(token=SLACK_TOKEN, channels={"#payments-alerts": "C0PAY"}),
    actions=lambda fake, timeout: slack_actions(SLACK_TOKEN, fake.base_url, timeout=timeout),
    cases=(
        Case("slack.post", "slack.post", lambda a: ctx("slack.post", SLACK_CHANNEL)),
        Case(
            "slack.reply",
            "slack.reply",
            lambda a: ctx("slack.reply", SLACK_CHANNEL, alert=RENOTIFY, parent=_slack_root(a)),
        ),
        Case(
            "slack.resolve",
            "slack.resolve",
            lambda a: ctx("slack.resolve", SLACK_CHANNEL, alert=RECOVERED, parent=_slack_root(a)),
        ),
        Case(
            "slack.refresh",
            "slack.refresh",
            lambda a: ctx("slack.refresh", SLACK_CHANNEL, parent=_slack_root(a)),
        ),
        Case("slack.storm", "slack.storm", lambda a: ctx("slack.storm", SLACK_STORM)),
        # The storm summary rewritten in place: a different request, the same rules.
        Case(
            "slack.storm:update",
            "slack.storm",
            lambda a: ctx("slack.storm", {**SLACK_STORM, "update": True}, parent=_slack_storm(a)),
        ),
    ),
)

# -- PagerDuty ------------------------------------------------------------------------------

PD_ROUTING_KEY = "C0NTRACTR0UT1NGKEY00000000000032"  # 32 characters, as PagerDuty wants
PD_API_TOKEN = "u+CONTRACTPDTOKEN0000"


def _pd_trigger(actions: Actions) -> ActionResult:
    return actions["pagerduty.trigger"].execute(ctx("pagerduty.trigger", {}))


def _pd_actions(fake: FakePagerDuty, timeout: float) -> list[Action]:
    return pagerduty_actions(
        routing_key=PD_ROUTING_KEY,
        api_token=PD_API_TOKEN,
        events_url=fake.events_url,
        api_url=fake.api_url,
        secret=lambda reference: None,  # no step names a key of its own here
        from_email=USER_EMAIL,
        timeout=timeout,
    )


PAGERDUTY: Vendor[FakePagerDuty] = Vendor(
    name="pagerduty",
    secrets=(PD_ROUTING_KEY, PD_API_TOKEN),
    fake=lambda: FakePagerDuty(routing_keys=(PD_ROUTING_KEY,), api_token=PD_API_TOKEN),
    actions=_pd_actions,
    cases=(
        Case("pagerduty.trigger", "pagerduty.trigger", lambda a: ctx("pagerduty.trigger", {})),
        Case(
            "pagerduty.acknowledge",
            "pagerduty.acknowledge",
            lambda a: ctx("pagerduty.acknowledge", {}, parent=_pd_trigger(a).response),
        ),
        Case(
            "pagerduty.resolve",
            "pagerduty.resolve",
            lambda a: ctx("pagerduty.resolve", {}, alert=RECOVERED, parent=_pd_trigger(a).response),
        ),
        Case(
            "pagerduty.note",
            "pagerduty.note",
            lambda a: ctx(
                "pagerduty.note",
                {"content": "Rolled back the payments deploy"},
                view=incident_view(refs=dict(_pd_trigger(a).refs)),
            ),
        ),
    ),
)

# -- Datadog --------------------------------------------------------------------------------

DD_API_KEY = "dd-api-0000000000-CONTRACTAPIKEY"
DD_APP_KEY = "dd-app-0000000000-CONTRACTAPPKEY"
DD_WORKFLOW = "5f0c1b2a-3d4e-4f50-8a6b-7c8d9e0f1a2b"
WORKFLOW_PARAMS = {"workflow_id": DD_WORKFLOW, "inputs": {"replicas": 6}}


def _dd_made(actions: Actions, name: str) -> Mapping[str, Any]:
    return actions[name].execute(ctx(name, {})).response


def _dd_started(actions: Actions) -> Mapping[str, Any]:
    return actions["datadog.workflow"].execute(ctx("datadog.workflow", WORKFLOW_PARAMS)).response


DATADOG: Vendor[FakeDatadog] = Vendor(
    name="datadog",
    secrets=(DD_API_KEY, DD_APP_KEY),
    fake=lambda: FakeDatadog(api_key=DD_API_KEY, app_key=DD_APP_KEY, workflows={DD_WORKFLOW}),
    actions=lambda fake, timeout: datadog_actions(
        api_key=DD_API_KEY,
        app_key=DD_APP_KEY,
        base_url=fake.base_url,
        app_url="https://app.datadoghq.com",
        timeout=timeout,
    ),
    cases=(
        Case("datadog.incident", "datadog.incident", lambda a: ctx("datadog.incident", {})),
        Case(
            "datadog.incident_timeline",
            "datadog.incident_timeline",
            lambda a: ctx(
                "datadog.incident_timeline",
                {},
                alert=RENOTIFY,
                parent=_dd_made(a, "datadog.incident"),
            ),
        ),
        Case(
            "datadog.incident_resolve",
            "datadog.incident_resolve",
            lambda a: ctx(
                "datadog.incident_resolve",
                {},
                alert=RECOVERED,
                parent=_dd_made(a, "datadog.incident"),
            ),
        ),
        Case("datadog.notebook", "datadog.notebook", lambda a: ctx("datadog.notebook", {})),
        Case(
            "datadog.notebook_resolve",
            "datadog.notebook_resolve",
            lambda a: ctx(
                "datadog.notebook_resolve",
                {},
                alert=RECOVERED,
                parent=_dd_made(a, "datadog.notebook"),
            ),
        ),
        Case(
            "datadog.workflow",
            "datadog.workflow",
            lambda a: ctx("datadog.workflow", WORKFLOW_PARAMS),
        ),
        # A started workflow is polled on later calls: a different request, the same rules.
        Case(
            "datadog.workflow:poll",
            "datadog.workflow",
            lambda a: ctx("datadog.workflow", WORKFLOW_PARAMS, previous=_dd_started(a)),
        ),
    ),
)

VENDORS: tuple[Vendor[Any], ...] = (SLACK, PAGERDUTY, DATADOG)
CASES = [pytest.param((vendor, case), id=case.label) for vendor in VENDORS for case in vendor.cases]


# -- the rig --------------------------------------------------------------------------------


@dataclass
class Rig:
    vendor: Vendor[Any]
    case: Case
    fake: LocalServer
    actions: Actions

    @property
    def action(self) -> Action:
        return self.actions[self.case.action]

    def context(self) -> ActionContext:
        return self.case.context(self.actions)

    def quick(self) -> Action:
        """The action under test with a short client timeout."""
        built = self.vendor.actions(self.fake, QUICK)
        return next(action for action in built if action.name == self.case.action)

    def fail(
        self, context: ActionContext, action: Action | None = None
    ) -> tuple[ActionError, list[tuple[str, bool]]]:
        """The error of one execute under the fault already arranged, and the requests it made."""
        before = len(self.fake.requests)
        with pytest.raises(ActionError) as info:
            (action or self.action).execute(context)
        # The fault met a request of this very action, not of its preparation.
        assert self.fake.pending_faults() == 0
        return info.value, self.fake.requests[before:]


@pytest.fixture(params=CASES)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    vendor: Vendor[Any]
    case: Case
    vendor, case = request.param
    with vendor.fake() as fake:
        actions = {action.name: action for action in vendor.actions(fake, TIMEOUT)}
        yield Rig(vendor, case, fake, actions)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK's hidden retries sleep between attempts: any sleep fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s inside an action")

    monkeypatch.setattr(time, "sleep", refuse)


def one_attempt(made: list[tuple[str, bool]]) -> None:
    """The faulted request was the action's only one of its kind, and its last: no retry."""
    assert [faulted for _, faulted in made].count(True) == 1, made
    assert made[-1][1], f"the action carried on after the fault: {made}"


# -- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS, ids=[v.name for v in VENDORS])
def test_every_action_has_a_case(vendor: Vendor[Any]) -> None:
    with vendor.fake() as fake:
        offered = {action.name for action in vendor.actions(fake, TIMEOUT)}
    assert offered == {case.action for case in vendor.cases}


def test_the_action_reaches_its_vendor_and_succeeds(rig: Rig) -> None:
    # Without this the fault tests below could pass against an action that never calls out.
    context = rig.context()
    before = len(rig.fake.requests)
    result = rig.action.execute(context)
    assert result.skipped_reason is None
    made = rig.fake.requests[before:]
    assert made and not any(faulted for _, faulted in made)


@pytest.mark.parametrize(("retry_after", "expected"), [("7", 7.0), ("0.5", 0.5)])
def test_a_rate_limit_is_retryable_after_the_wait_it_names(
    rig: Rig, retry_after: str, expected: float
) -> None:
    context = rig.context()
    rig.fake.refuse_next(ANY, 429, retry_after=retry_after)
    error, made = rig.fail(context)
    assert (error.retryable, error.retry_after) == (True, expected)
    one_attempt(made)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retryable(rig: Rig, status: int) -> None:
    context = rig.context()
    rig.fake.refuse_next(ANY, status)
    error, made = rig.fail(context)
    # No Retry-After was sent: the runner's own backoff decides, not an invented wait.
    assert (error.retryable, error.retry_after) == (True, None)
    one_attempt(made)


def test_a_refused_connection_is_retryable(rig: Rig) -> None:
    context = rig.context()
    rig.fake.down()
    error, made = rig.fail(context)
    assert error.retryable is True
    assert made == []


def test_a_timeout_is_retryable(rig: Rig) -> None:
    context = rig.context()
    rig.fake.delay_next(ANY, STALL)
    started = time.monotonic()
    error, made = rig.fail(context, rig.quick())
    assert error.retryable is True
    assert time.monotonic() - started < STALL  # the client gave up; it did not wait it out
    one_attempt(made)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_refused_request_is_permanent(rig: Rig, status: int) -> None:
    # Invalid, unauthorised, forbidden, gone: the same request would be refused again.
    context = rig.context()
    rig.fake.refuse_next(ANY, status)
    error, made = rig.fail(context)
    assert (error.retryable, error.retry_after) == (False, None)
    one_attempt(made)


def every_outcome(rig: Rig) -> tuple[list[str], list[ActionError]]:
    """What the action hands the runner for a success and for every kind of failure, as
    text, with each error: the vendor refusing, also in words quoting the secrets back,
    stalling, and gone."""
    context = rig.context()
    echo = "credentials " + " ".join(rig.vendor.secrets)
    texts = [repr(rig.action.describe(context))]
    result = rig.action.execute(context)
    texts += [repr(result.response), repr(result.refs), repr(result.skipped_reason)]
    quick = rig.quick()
    faults: list[tuple[Callable[[], None], Action]] = [
        (lambda: rig.fake.refuse_next(ANY, 429, retry_after="1"), rig.action),
        (lambda: rig.fake.refuse_next(ANY, 503), rig.action),
        (lambda: rig.fake.refuse_next(ANY, 400), rig.action),
        (lambda: rig.fake.refuse_next(ANY, 400, message=echo), rig.action),
        (lambda: rig.fake.refuse_next(ANY, 401, message=echo), rig.action),
        (lambda: rig.fake.refuse_next(ANY, 503, message=echo), rig.action),
        (lambda: rig.fake.delay_next(ANY, STALL), quick),
        (rig.fake.down, rig.action),  # last: the fake stays down
    ]
    errors: list[ActionError] = []
    for arrange, action in faults:
        arrange()
        error, _ = rig.fail(context, action)
        texts += [str(error), repr(error), error.message, repr(error.response)]
        errors.append(error)
    return texts, errors


def test_no_secret_reaches_an_error_a_result_or_the_audit_log(rig: Rig) -> None:
    texts, errors = every_outcome(rig)
    for error in errors:
        # Nothing chained: an SDK's exception holds the request, credentials included, and
        # a logged traceback would print it.
        assert error.__cause__ is None and error.__context__ is None
    for text in texts:
        for secret in rig.vendor.secrets:
            assert secret not in text


def test_no_secret_reaches_a_log_line(
    rig: Rig, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # everything any SDK logs, at the most talkative level
    every_outcome(rig)
    out, err = capsys.readouterr()
    leaks = [
        line
        for text in (caplog.text, out, err)
        for line in text.splitlines()
        if any(secret in line for secret in rig.vendor.secrets)
    ]
    assert leaks == []
