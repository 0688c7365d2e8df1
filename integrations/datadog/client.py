"""The Datadog API calls responder makes, over one retry-free datadog-api-client ApiClient.

Translates every SDK outcome into plain JSON dicts or `ActionError`; SDK types stop here.
"""

from __future__ import annotations

import http.client
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from datadog_api_client import ApiClient, Configuration, rest
from datadog_api_client.exceptions import ApiException, OpenApiException
from datadog_api_client.model_utils import OpenApiModel, validate_and_convert_types
from datadog_api_client.v1.api.notebooks_api import NotebooksApi
from datadog_api_client.v1.model.notebook_create_request import NotebookCreateRequest
from datadog_api_client.v1.model.notebook_update_request import NotebookUpdateRequest
from datadog_api_client.v2.api.incidents_api import IncidentsApi
from datadog_api_client.v2.api.workflow_automation_api import WorkflowAutomationApi
from datadog_api_client.v2.model.create_attachment_request import CreateAttachmentRequest
from datadog_api_client.v2.model.incident_create_request import IncidentCreateRequest
from datadog_api_client.v2.model.incident_search_sort_order import IncidentSearchSortOrder
from datadog_api_client.v2.model.incident_update_request import IncidentUpdateRequest
from datadog_api_client.v2.model.workflow_instance_create_request import (
    WorkflowInstanceCreateRequest,
)

from responder.actions import ActionError, retry_seconds

# Datadog marks these operations unstable; the SDK refuses them unless enabled one by one.
# Exactly the ones called below, so that a new call is a deliberate choice.
UNSTABLE_OPERATIONS = frozenset(
    {
        "v2.create_incident",
        "v2.search_incidents",
        "v2.update_incident",
        "v2.create_incident_attachment",
        "v2.list_incident_attachments",
    }
)
# Besides 429 and 5xx: a request timeout, and status 0 (the SDK's code for a TLS failure).
_RETRYABLE_STATUS = frozenset({0, 408, 429})
_MAX_ERRORS = 5
_MAX_TEXT = 300

Json = dict[str, Any]
M = TypeVar("M", bound=OpenApiModel)


def build_configuration(
    *, api_key: str, app_key: str, base_url: str, timeout: float
) -> Configuration:
    """An SDK configuration that makes exactly one HTTP attempt per call and never sleeps."""
    # The SDK's constructors and converters carry no annotations; the values are checked here.
    config = Configuration(  # type: ignore[no-untyped-call]
        host=base_url.rstrip("/"),
        api_key={"apiKeyAuth": api_key, "appKeyAuth": app_key},
        request_timeout=timeout,
        # The SDK's own retry sleeps on 429/5xx inside the call; the runner owns backoff.
        enable_retry=False,
        # Without a policy urllib3 applies Retry(3) and quietly reconnects after a refused
        # or reset connection; False raises the first error as it is.
        retry_policy=urllib3.Retry(total=False, redirect=False),
        # We read the JSON ourselves: the SDK's response models reject an answer that drifts
        # from the spec, and by then a create has already happened on Datadog's side.
        preload_content=False,
        # Request bodies are written with the spec's own (JSON) property names.
        spec_property_naming=True,
        compress=False,
    )
    for operation in UNSTABLE_OPERATIONS:
        # The SDK's setter only accepts the name without its "v2." prefix.
        config.unstable_operations[operation.split(".", 1)[1]] = True
    return config


def enabled_unstable_operations(config: Configuration) -> frozenset[str]:
    values: Mapping[str, bool] = config.unstable_operations.values
    return frozenset(name for name, enabled in values.items() if enabled)


# As many pooled connections as the runner has threads calling: the SDK's default of 4
# makes urllib3 discard (and later reopen) connections when more calls run at once.
POOL_SIZE = 16


class _PooledApiClient(ApiClient):
    def _build_rest_client(self) -> rest.RESTClientObject:
        return rest.RESTClientObject(self.configuration, maxsize=POOL_SIZE)  # type: ignore[no-untyped-call]


class DatadogApi:
    """Incidents (v2), notebooks (v1) and workflow instances (v2), one attempt per call."""

    def __init__(self, config: Configuration) -> None:
        self._config = config
        client = _PooledApiClient(config)
        self._incidents = IncidentsApi(client)  # type: ignore[no-untyped-call]
        self._notebooks = NotebooksApi(client)  # type: ignore[no-untyped-call]
        self._workflows = WorkflowAutomationApi(client)  # type: ignore[no-untyped-call]
        keys = config.api_key.values()
        self._secrets = [key for key in keys if isinstance(key, str) and key]

    # -- incidents ---------------------------------------------------------------------------

    def create_incident(self, body: Json) -> Json:
        request = self._body(IncidentCreateRequest, body)
        return self._call("CreateIncident", lambda: self._incidents.create_incident(request))

    def search_incidents(self, query: str, *, page_size: int, page_offset: int) -> Json:
        """Newest first."""
        return self._call(
            "SearchIncidents",
            lambda: self._incidents.search_incidents(
                query,
                sort=IncidentSearchSortOrder.CREATED_DESCENDING,
                page_size=page_size,
                page_offset=page_offset,
            ),
        )

    def update_incident(self, incident_id: str, body: Json) -> Json:
        request = self._body(IncidentUpdateRequest, body)
        return self._call(
            "UpdateIncident", lambda: self._incidents.update_incident(incident_id, request)
        )

    def create_incident_attachment(self, incident_id: str, body: Json) -> Json:
        request = self._body(CreateAttachmentRequest, body)
        return self._call(
            "CreateIncidentAttachment",
            lambda: self._incidents.create_incident_attachment(incident_id, request),
        )

    def list_incident_attachments(self, incident_id: str) -> Json:
        return self._call(
            "ListIncidentAttachments",
            lambda: self._incidents.list_incident_attachments(incident_id),
        )

    # -- notebooks ---------------------------------------------------------------------------

    def create_notebook(self, body: Json) -> Json:
        request = self._body(NotebookCreateRequest, body)
        return self._call("CreateNotebook", lambda: self._notebooks.create_notebook(request))

    def get_notebook(self, notebook_id: int) -> Json:
        return self._call("GetNotebook", lambda: self._notebooks.get_notebook(notebook_id))

    def update_notebook(self, notebook_id: int, body: Json) -> Json:
        request = self._body(NotebookUpdateRequest, body)
        return self._call(
            "UpdateNotebook", lambda: self._notebooks.update_notebook(notebook_id, request)
        )

    def list_notebooks(self, query: str, *, count: int, start: int) -> Json:
        """Those with `query` in their name (or author handle), oldest first."""
        return self._call(
            "ListNotebooks",
            lambda: self._notebooks.list_notebooks(
                query=query,
                count=count,
                start=start,
                include_cells=False,
                sort_field="created",
                sort_dir="asc",
            ),
        )

    # -- workflow instances ------------------------------------------------------------------

    def create_workflow_instance(self, workflow_id: str, payload: Json) -> Json:
        request = self._body(WorkflowInstanceCreateRequest, {"meta": {"payload": payload}})
        return self._call(
            "CreateWorkflowInstance",
            lambda: self._workflows.create_workflow_instance(workflow_id, request),
        )

    def get_workflow_instance(self, workflow_id: str, instance_id: str) -> Json:
        return self._call(
            "GetWorkflowInstance",
            lambda: self._workflows.get_workflow_instance(workflow_id, instance_id),
        )

    def list_workflow_instances(
        self, workflow_id: str, *, page_size: int, page_number: int
    ) -> Json:
        """Newest first."""
        return self._call(
            "ListWorkflowInstances",
            lambda: self._workflows.list_workflow_instances(
                workflow_id, page_size=page_size, page_number=page_number
            ),
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _body(self, model: type[M], data: Json) -> M:
        """The SDK model for a request written as spec JSON, validated the SDK's way."""
        failure: ActionError
        try:
            value: object = validate_and_convert_types(  # type: ignore[no-untyped-call]
                data, (model,), ["body"], True, True, configuration=self._config
            )
        except OpenApiException as exc:
            failure = ActionError(
                self.redact(f"datadog: request does not fit the API: {exc}")[:1000],
                retryable=False,
                response={"error": "invalid_request"},
            )
        else:
            if isinstance(value, model):
                return value
            failure = ActionError(
                f"datadog: request does not fit {model.__name__}",
                retryable=False,
                response={"error": "invalid_request"},
            )
        raise failure

    def _call(self, operation: str, send: Callable[[], object]) -> Json:
        # The failure is raised outside the `except` blocks so it carries no __context__:
        # SDK and urllib3 exceptions can hold the request, and with it both keys.
        failure: ActionError
        try:
            with warnings.catch_warnings():
                # Each unstable call warns; it was enabled on purpose (UNSTABLE_OPERATIONS).
                # catch_warnings swaps the process-wide filter list, so two calls at once can
                # leave this one narrow "ignore" behind: harmless, unlike the warning spam.
                warnings.filterwarnings(
                    "ignore", message="Using unstable operation", category=UserWarning
                )
                answer = send()
        except ApiException as exc:
            failure = self._api_error(operation, exc)
        except OpenApiException as exc:
            failure = ActionError(
                self.redact(f"datadog {operation}: refused by the client: {exc}")[:1000],
                retryable=False,
                response={"error": "invalid_request"},
            )
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            failure = self._transport_error(operation, exc)
        else:
            return self._json(operation, answer)
        raise failure

    def _json(self, operation: str, answer: object) -> Json:
        if not isinstance(answer, urllib3.BaseHTTPResponse):
            raise ActionError(f"datadog {operation}: unexpected answer", retryable=False)
        failure: ActionError
        try:
            raw = answer.data
            parsed: object = json.loads(raw) if raw.strip() else {}
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            failure = self._transport_error(operation, exc)
        except ValueError:
            # The call may have done its work: a retry looks for the result before redoing it.
            failure = ActionError(
                f"datadog {operation}: unreadable answer (not JSON)",
                retryable=True,
                response={"error": "bad_body", "status": answer.status},
            )
        else:
            if isinstance(parsed, dict):
                return parsed
            failure = ActionError(
                f"datadog {operation}: unexpected answer (not an object)",
                retryable=True,
                response={"error": "bad_body", "status": answer.status},
            )
        finally:
            answer.release_conn()
        raise failure

    def _api_error(self, operation: str, exc: ApiException) -> ActionError:
        status = int(getattr(exc, "status", 0) or 0)
        errors = self._errors(getattr(exc, "body", None))
        retryable = status in _RETRYABLE_STATUS or status >= 500
        retry_after = None
        if retryable:
            headers = getattr(exc, "headers", None) or {}
            retry_after = retry_seconds(_header(headers, "Retry-After"))
            if retry_after is None:
                # Datadog's rate limiter says when the window resets, in seconds.
                retry_after = retry_seconds(_header(headers, "X-RateLimit-Reset"))
        first = errors[0] if errors else None
        detail = f": {first if isinstance(first, str) else json.dumps(first)}" if first else ""
        return ActionError(
            f"datadog {operation} failed: HTTP {status}{detail[:_MAX_TEXT]}",
            retryable=retryable,
            retry_after=retry_after,
            response={"status": status, "errors": errors},
        )

    def _errors(self, body: object) -> list[Any]:
        """Datadog's `errors` list (strings, or JSON:API objects on some v2 routes), trimmed."""
        items: list[Any]
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            items = body["errors"]
        elif isinstance(body, dict):
            items = [body]
        elif body:
            items = [str(body)]
        else:
            items = []
        return [self._trim(item) for item in items[:_MAX_ERRORS]]

    def _trim(self, value: object) -> Any:
        if isinstance(value, str):
            return self.redact(value)[:_MAX_TEXT]
        if isinstance(value, dict):
            return {str(k)[:100]: self._trim(v) for k, v in list(value.items())[:10]}
        if isinstance(value, list):
            return [self._trim(v) for v in value[:_MAX_ERRORS]]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(str(value))[:_MAX_TEXT]

    def _transport_error(self, operation: str, exc: BaseException) -> ActionError:
        kind = "timeout" if _is_timeout(exc) else "connection_error"
        detail = self.redact(str(exc) or type(exc).__name__)[:_MAX_TEXT]
        return ActionError(
            f"datadog {operation}: {kind}: {detail}",
            retryable=True,
            response={"error": kind, "detail": detail},
        )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _header(headers: Mapping[str, Any], name: str) -> object:
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return value
    return None


def _is_timeout(exc: BaseException) -> bool:
    # NewConnectionError (refused) subclasses urllib3's ConnectTimeoutError: not a timeout.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    timeouts = (urllib3.exceptions.TimeoutError, TimeoutError)
    return isinstance(exc, timeouts) or isinstance(getattr(exc, "reason", None), timeouts)
