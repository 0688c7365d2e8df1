"""What every Datadog action shares: the client slot, links into the web UI, run markers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.datadog.client import DatadogApi
from responder.actions import Action, ActionContext, ActionError, Link, StepParams


@dataclass(frozen=True, slots=True)
class AppLinks:
    """URLs of Datadog's web UI (`app_url`, e.g. https://app.datadoghq.com), for people."""

    app_url: str

    def _url(self, path: str) -> str:
        return f"{self.app_url.rstrip('/')}/{path}"

    def incident(self, public_id: object) -> str:
        return self._url(f"incidents/{quote(str(public_id), safe='')}")

    def notebook(self, notebook_id: object) -> str:
        return self._url(f"notebook/{quote(str(notebook_id), safe='')}")

    def monitor(self, monitor_id: object) -> str:
        return self._url(f"monitors/{quote(str(monitor_id), safe='')}")

    def workflow_instance(self, workflow_id: str, instance_id: str) -> str:
        # The address Datadog itself gives an instance (sourceForTemplating.url).
        workflow = quote(workflow_id, safe="")
        return self._url(f"workflow/{workflow}?instance={quote(instance_id, safe='')}")


class DatadogAction(Action):
    """Base of the Datadog actions: configured when a client exists.

    Step params render as plain text: none of them is Markdown (titles, queries, workflow
    inputs), and Markdown escaping would put backslashes into a query or a service name.
    The Markdown cells are written here, from the alert, escaped by `markdown.escape`.

    No pace of our own: Datadog limits per organisation and endpoint, not per incident or
    notebook, and a 429 says when its window resets (X-RateLimit-Reset); the runner waits.
    """

    params: ClassVar[type[StepParams]]
    markup: ClassVar[str] = "plain"
    needs: ClassVar[str] = "DD_API_KEY and DD_APP_KEY"

    def __init__(self, api: DatadogApi | None, links: AppLinks) -> None:
        self._api = api
        self._links = links

    @property
    def configured(self) -> bool:
        return self._api is not None

    def _client(self) -> DatadogApi:
        if self._api is None:
            # The runner records unconfigured runs as skipped; reaching this is a wiring bug.
            raise ActionError("datadog is not configured (DD_API_KEY/DD_APP_KEY)", retryable=False)
        return self._api


class NoParams(StepParams):
    """Follow-up steps take everything from the run they continue."""


def run_marker(ctx: ActionContext) -> str:
    """A short token unique to this run, written into what it creates so a retry can find it.

    Derived from the run's idempotency key (stable across attempts); letters, digits and a
    dash only, so it survives Datadog's title and name searches unchanged.
    """
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]
    return f"rsp-{digest}"


def ref_from(ctx: ActionContext, key: str) -> Mapping[str, Any] | None:
    """What the run this follow-up continues made: its result first, the incident's refs next."""
    for source in (ctx.parent, ctx.incident.refs.get(key)):
        if not isinstance(source, Mapping):
            continue
        nested = source.get(key)
        ref = nested if isinstance(nested, Mapping) else source
        if ref.get("id") not in (None, ""):
            return ref
    return None


def as_dict(value: object) -> dict[str, Any]:
    """A JSON object from an answer, or {} when the answer has something else there."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """A JSON array from an answer, or [] when the answer has something else there."""
    return value if isinstance(value, list) else []


def alert_title(ctx: ActionContext) -> str:
    """The monitor's name (no "[Triggered]" prefix), as people know the problem."""
    return ctx.alert.monitor_name or ctx.incident.title or ctx.alert.title or "Datadog alert"


def monitor_url(ctx: ActionContext, links: AppLinks) -> str | None:
    monitor_id = ctx.monitor_id
    return links.monitor(monitor_id) if monitor_id else None


def event_url(ctx: ActionContext) -> str | None:
    link = ctx.alert.link
    return link if link and link.startswith(("https://", "http://")) else None


def now_utc() -> datetime:
    return datetime.now(UTC)


def ended_at(ctx: ActionContext) -> datetime:
    """When the problem ended, for a field that must hold a time: now when no recovery is
    known yet (a step that runs on another transition, its incident still open)."""
    return ctx.recovered_at or now_utc()


def alert_links(ctx: ActionContext, links: AppLinks) -> list[Link]:
    """The monitor, the notification's event and its graph snapshot, where known."""
    found = [
        ("Monitor", monitor_url(ctx, links)),
        ("Event", event_url(ctx)),
        ("Graph snapshot", ctx.alert.snapshot),
    ]
    return [Link(title, url) for title, url in found if url]
