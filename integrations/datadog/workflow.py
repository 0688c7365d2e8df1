"""datadog.workflow: start a Workflow Automation instance and follow it to its end (API v2).

The first attempt starts the instance and asks to be polled; later attempts read its status
(5, 10, 20, 40, then every 60 seconds) until it succeeds, fails or runs out of time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from integrations.datadog.base import DatadogAction, as_dict, as_list, now_utc, run_marker
from integrations.datadog.client import DatadogApi, Json
from integrations.datadog.lookup import Lookup, floor, look_for, looked
from responder.actions import (
    ActionContext,
    ActionError,
    ActionResult,
    StepParams,
    iso_utc,
    parse_time,
    step_params,
)

REF = "datadog_workflow"
# The input that carries this run's marker, so a retry can recognise the instance it started.
KEY_INPUT = "responder_key"
FIRST_POLL = 5.0
MAX_POLL = 60.0
SUCCEEDED = frozenset({"SUCCEEDED", "SUCCESS", "COMPLETED"})
FAILED = frozenset({"FAILED", "FAILURE", "ERROR", "CANCELED", "CANCELLED", "TIMED_OUT"})
# Instances looked at for an earlier start of ours, 100 a page (the API's maximum), each
# read in full: at most 500, fewer when older ones come first.
LIST_PAGE = 100
LIST_PAGES = 5


class WorkflowParams(StepParams):
    """`datadog.workflow`: run a workflow with these inputs and wait for its outcome."""

    workflow_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    timeout: int = 600  # seconds from the start until the run gives up waiting

    @field_validator("workflow_id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("workflow_id is empty")
        return value.strip()

    @field_validator("inputs")
    @classmethod
    def _key_is_ours(cls, value: dict[str, Any]) -> dict[str, Any]:
        if KEY_INPUT in value:
            raise ValueError(f"inputs.{KEY_INPUT} is set by responder itself")
        return value

    @field_validator("timeout")
    @classmethod
    def _sane_timeout(cls, value: int) -> int:
        if not 10 <= value <= 86400:
            raise ValueError("timeout must be between 10 seconds and 1 day")
        return value


class WorkflowAction(DatadogAction):
    """One workflow instance per run, even across crashes, followed until it finishes.

    No follow-up on recovery: what undoes a workflow (scaling back, say) is a choice for the
    playbook's author, who can write it as its own step; guessing it here could do harm.
    """

    name: ClassVar[str] = "datadog.workflow"
    params: ClassVar[type[StepParams]] = WorkflowParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(WorkflowParams, ctx)
        instance_id = _instance_id(ctx.previous)
        if instance_id is not None:
            return {
                "method": "GetWorkflowInstance",
                "workflow_id": params.workflow_id,
                "instance_id": instance_id,
            }
        return {
            "method": "CreateWorkflowInstance",
            "workflow_id": params.workflow_id,
            "payload": _payload(ctx, params),
            "timeout_seconds": params.timeout,
            "search_first": ctx.may_have_acted,
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(WorkflowParams, ctx)
        api = self._client()
        if ctx.previous is not None and _instance_id(ctx.previous) is not None:
            return self._poll(api, params, ctx.previous)
        lookup: Lookup | None = None
        if ctx.may_have_acted:
            lookup = _earlier_instance(api, params.workflow_id, ctx)
            if lookup.found is not None:
                found = lookup.found
                started = parse_time(as_dict(found.get("attributes")).get("startTimestamp"))
                return self._started(params, str(found["id"]), started, adopted=True, lookup=lookup)
        answer = api.create_workflow_instance(params.workflow_id, _payload(ctx, params))
        instance_id = as_dict(answer.get("data")).get("id")
        if not instance_id:
            # Started, but we cannot tell which: the retry looks for it by its marker.
            raise ActionError(
                "datadog CreateWorkflowInstance: answer without data.id", retryable=True
            )
        return self._started(params, str(instance_id), None, adopted=False, lookup=lookup)

    def _started(
        self,
        params: WorkflowParams,
        instance_id: str,
        started: datetime | None,
        *,
        adopted: bool,
        lookup: Lookup | None,
    ) -> ActionResult:
        response: dict[str, Any] = {
            "workflow_id": params.workflow_id,
            "instance_id": instance_id,
            "status": "running",
            "started_at": iso_utc(started or now_utc()),
            "polls": 0,
            "adopted": adopted,
            **looked(lookup),
        }
        return ActionResult(
            response=response, refs=self._refs(params, instance_id), poll_after=FIRST_POLL
        )

    def _poll(
        self, api: DatadogApi, params: WorkflowParams, previous: Mapping[str, Any]
    ) -> ActionResult:
        instance_id = str(previous["instance_id"])
        answer = api.get_workflow_instance(params.workflow_id, instance_id)
        attributes = as_dict(as_dict(answer.get("data")).get("attributes"))
        kind = str(as_dict(attributes.get("instanceStatus")).get("detailsKind") or "").upper()
        polls = int(previous.get("polls") or 0) + 1
        started = parse_time(previous.get("started_at")) or now_utc()
        response: dict[str, Any] = {
            "workflow_id": params.workflow_id,
            "instance_id": instance_id,
            "started_at": iso_utc(started),
            "polls": polls,
            "adopted": bool(previous.get("adopted")),
            "datadog_status": kind or None,
        }
        refs = self._refs(params, instance_id)
        if kind in SUCCEEDED:
            finished = attributes.get("endTimestamp")
            return ActionResult(
                response={**response, "status": "succeeded", "finished_at": finished}, refs=refs
            )
        if kind in FAILED:
            status = "cancelled" if kind.startswith("CANCEL") else "failed"
            raise ActionError(
                f"datadog workflow instance {instance_id} {status} ({kind})",
                retryable=False,
                response={**response, "status": status, "url": refs[REF]["url"]},
            )
        waited = (now_utc() - started).total_seconds()
        if waited >= params.timeout:
            raise ActionError(
                f"datadog workflow instance {instance_id} did not finish within "
                f"{params.timeout}s (last status {kind or 'unknown'})",
                retryable=False,
                response={**response, "status": "timed_out", "url": refs[REF]["url"]},
            )
        # Quick jobs finish within seconds, long ones are not worth asking about every 5s;
        # the last poll lands just after the deadline so a timeout is noticed promptly.
        delay = min(FIRST_POLL * 2**polls, MAX_POLL, params.timeout - waited + 1)
        return ActionResult(response={**response, "status": "running"}, refs=refs, poll_after=delay)

    def _refs(self, params: WorkflowParams, instance_id: str) -> dict[str, Any]:
        url = self._links.workflow_instance(params.workflow_id, instance_id)
        return {REF: {"id": params.workflow_id, "instance_id": instance_id, "url": url}}


def _payload(ctx: ActionContext, params: WorkflowParams) -> Json:
    return {**params.inputs, KEY_INPUT: run_marker(ctx)}


def _instance_id(previous: Mapping[str, Any] | None) -> str | None:
    value = previous.get("instance_id") if previous else None
    return str(value) if value else None


def _earlier_instance(api: DatadogApi, workflow_id: str, ctx: ActionContext) -> Lookup:
    """An instance we started whose answer was lost, recognised by the marker in its inputs.

    The list answer holds ids and statuses only, so each instance is read in full, newest
    first, until ours or one started before our incident opened; wherever Datadog shows the
    trigger's payload, the marker is a value inside it.
    """
    marker = run_marker(ctx)
    since = floor(ctx)

    def read(page: int) -> list[Json]:
        listed = api.list_workflow_instances(workflow_id, page_size=LIST_PAGE, page_number=page)
        return [as_dict(item) for item in as_list(listed.get("data"))]

    def ours(item: Json) -> Json | None:
        instance_id = item.get("id")
        if not instance_id or older(item):
            return None
        full = as_dict(api.get_workflow_instance(workflow_id, str(instance_id)).get("data"))
        return {**full, "id": instance_id} if _holds(full.get("attributes"), marker) else None

    def older(item: Json) -> bool:
        started = parse_time(as_dict(item.get("attributes")).get("startTimestamp"))
        return started is not None and started < since

    return look_for(
        "workflow instance", read, ours, page_size=LIST_PAGE, max_pages=LIST_PAGES, older=older
    )


def _holds(value: object, marker: str, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if isinstance(value, str):
        return value == marker
    if isinstance(value, dict):
        return any(_holds(item, marker, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_holds(item, marker, depth + 1) for item in value)
    return False
