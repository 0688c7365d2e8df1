"""Datadog integration: incidents, RCA notebooks and Workflow Automation runs via the API."""

from __future__ import annotations

from integrations.datadog.base import AppLinks
from integrations.datadog.client import DatadogApi, build_configuration
from integrations.datadog.incident import (
    IncidentAction,
    IncidentParams,
    IncidentResolveAction,
    IncidentTimelineAction,
)
from integrations.datadog.notebook import (
    NotebookAction,
    NotebookParams,
    NotebookResolveAction,
    RelatedSignal,
)
from integrations.datadog.workflow import WorkflowAction, WorkflowParams
from responder.actions import Action

__all__ = [
    "IncidentAction",
    "IncidentParams",
    "IncidentResolveAction",
    "IncidentTimelineAction",
    "NotebookAction",
    "NotebookParams",
    "NotebookResolveAction",
    "RelatedSignal",
    "WorkflowAction",
    "WorkflowParams",
    "datadog_actions",
    "default_app_url",
]


def datadog_actions(
    *,
    api_key: str | None,
    app_key: str | None,
    base_url: str,
    app_url: str,
    timeout: float = 10.0,
) -> list[Action]:
    """Every datadog.* action; without both keys they all report configured=False."""
    api_key = api_key.strip() if api_key else None
    app_key = app_key.strip() if app_key else None
    api: DatadogApi | None = None
    if api_key and app_key:
        config = build_configuration(
            api_key=api_key, app_key=app_key, base_url=base_url, timeout=timeout
        )
        api = DatadogApi(config)
    links = AppLinks(app_url)
    return [
        IncidentAction(api, links),
        IncidentTimelineAction(api, links),
        IncidentResolveAction(api, links),
        NotebookAction(api, links),
        NotebookResolveAction(api, links),
        WorkflowAction(api, links),
    ]


def default_app_url(site: str) -> str:
    """The web UI for a `DD_SITE`: app.datadoghq.com, app.datadoghq.eu, us3.datadoghq.com..."""
    site = site.strip().lower() or "datadoghq.com"
    # The US1, EU1 and GOV sites put the UI on "app."; the newer regions serve it bare.
    if site in ("datadoghq.com", "datadoghq.eu", "ddog-gov.com"):
        return f"https://app.{site}"
    return f"https://{site}"
