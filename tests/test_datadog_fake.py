"""The Datadog fake answers like Datadog: what it accepts and rejects, and its answer shapes.

Raw HTTP shows what the fake itself refuses (the SDK would refuse some of it first); the real
SDK, with its response models switched on, proves the answers have Datadog's shapes.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v1.api.notebooks_api import NotebooksApi
from datadog_api_client.v2.api.incidents_api import IncidentsApi
from datadog_api_client.v2.api.workflow_automation_api import WorkflowAutomationApi

from tests.fakes.datadog import FakeDatadog

API_KEY, APP_KEY = "dd-api-test", "dd-app-test"
WORKFLOW = "ccf73164-1998-4785-a7a3-8d06c7e5f558"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The SDK warns on every unstable call; these tests call them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Using unstable operation:UserWarning")


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


def call(
    fake: FakeDatadog,
    method: str,
    path: str,
    body: Any = None,
    *,
    keys: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, parsed JSON) of one raw request."""
    headers = {"Content-Type": "application/json"}
    headers.update(
        keys if keys is not None else {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
    )
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(fake.base_url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sdk(fake: FakeDatadog) -> ApiClient:
    """The SDK as shipped (response models checked), pointed at the fake, retries off."""
    config = Configuration(  # type: ignore[no-untyped-call]
        host=fake.base_url,
        api_key={"apiKeyAuth": API_KEY, "appKeyAuth": APP_KEY},
        retry_policy=urllib3.Retry(total=False),
    )
    for name in ("create_incident", "search_incidents", "update_incident", "get_incident"):
        config.unstable_operations[name] = True
    for name in ("create_incident_attachment", "list_incident_attachments"):
        config.unstable_operations[name] = True
    return ApiClient(config)


def incident_body(**attributes: Any) -> dict[str, Any]:
    base = {"title": "Payments down", "customer_impacted": False}
    return {"data": {"type": "incidents", "attributes": {**base, **attributes}}}


def notebook_body(**attributes: Any) -> dict[str, Any]:
    markdown = {
        "type": "notebook_cells",
        "attributes": {"definition": {"type": "markdown", "text": "x"}},
    }
    base = {"name": "RCA", "cells": [markdown], "time": {"live_span": "1h"}}
    return {"data": {"type": "notebooks", "attributes": {**base, **attributes}}}


def create_incident(fake: FakeDatadog, **attributes: Any) -> dict[str, Any]:
    status, answer = call(fake, "POST", "/api/v2/incidents", incident_body(**attributes))
    assert status == 201, answer
    data: dict[str, Any] = answer["data"]
    return data


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"DD-API-KEY": API_KEY},
        {"DD-APPLICATION-KEY": APP_KEY},
        {"DD-API-KEY": "wrong", "DD-APPLICATION-KEY": APP_KEY},
        {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": "wrong"},
    ],
    ids=["none", "no-app-key", "no-api-key", "bad-api-key", "bad-app-key"],
)
def test_missing_or_wrong_keys_are_forbidden(fake: FakeDatadog, keys: dict[str, str]) -> None:
    for method, path, body in [
        ("POST", "/api/v2/incidents", incident_body()),
        ("GET", "/api/v1/notebooks", None),
        ("POST", f"/api/v2/workflows/{WORKFLOW}/instances", {}),
    ]:
        assert call(fake, method, path, body, keys=keys) == (403, {"errors": ["Forbidden"]})
    assert fake.incidents() == [] and fake.instances() == []


def test_calls_are_recorded_without_the_keys(fake: FakeDatadog) -> None:
    call(fake, "GET", "/api/v1/notebooks?query=rca")
    (recorded,) = fake.calls
    assert (recorded.route, recorded.method, recorded.query) == (
        "ListNotebooks",
        "GET",
        {"query": "rca"},
    )
    assert API_KEY not in repr(fake.calls) and APP_KEY not in repr(fake.calls)


# -- incidents -------------------------------------------------------------------------------


def test_create_incident_answers_like_datadog(fake: FakeDatadog) -> None:
    fields = {"severity": {"type": "dropdown", "value": "SEV-2"}}
    cells = [{"cell_type": "markdown", "content": {"content": "hello"}}]
    data = create_incident(fake, fields=fields, initial_cells=cells)
    assert UUID.match(data["id"]) and data["type"] == "incidents"
    attributes = data["attributes"]
    assert isinstance(attributes["public_id"], int)
    assert attributes["fields"]["state"] == {"type": "dropdown", "value": "active"}
    assert attributes["fields"]["severity"]["value"] == attributes["severity"] == "SEV-2"
    assert attributes["fields"]["teams"] == {"type": "autocomplete", "value": None}
    assert attributes["resolved"] is None
    (stored,) = fake.incidents()
    assert stored.initial_cells == cells


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"title": None}, "data.attributes.title: required"),
        ({"title": "  "}, "data.attributes.title: must not be empty"),
        ({"customer_impacted": None}, "data.attributes.customer_impacted: required"),
        ({"customer_impacted": "no"}, "data.attributes.customer_impacted: expected a boolean"),
        ({"customer_impacted": True}, "customer_impact_scope: required when customer_impacted"),
        ({"fields": {"severity": {"type": "dropdown", "value": "SEV-9"}}}, "is not one of"),
        ({"fields": {"state": {"type": "dropdown", "value": "open"}}}, "is not one of"),
        ({"fields": {"colour": {"type": "textbox", "value": "red"}}}, "no such incident field"),
        ({"fields": {"teams": {"type": "dropdown", "value": "x"}}}, "must be 'autocomplete'"),
        ({"fields": {"teams": {"type": "autocomplete", "value": "x"}}}, "expected an array"),
        ({"initial_cells": [{"cell_type": "text", "content": {"content": "x"}}]}, "must be"),
        ({"initial_cells": [{"cell_type": "markdown"}]}, "content: required"),
        ({"tags": ["team:payments"]}, "unknown attribute(s) tags"),
    ],
)
def test_create_incident_rejects_what_datadog_rejects(
    fake: FakeDatadog, attributes: dict[str, Any], error: str
) -> None:
    status, answer = call(fake, "POST", "/api/v2/incidents", incident_body(**attributes))
    assert status == 400
    assert len(answer["errors"]) == 1 and error in answer["errors"][0]
    assert fake.incidents() == []


def test_create_incident_needs_data_of_type_incidents(fake: FakeDatadog) -> None:
    assert call(fake, "POST", "/api/v2/incidents", {"title": "x"})[0] == 400
    body = incident_body()
    body["data"]["type"] = "cases"
    assert call(fake, "POST", "/api/v2/incidents", body) == (
        400,
        {"errors": ["data.type: must be 'incidents'"]},
    )


def test_update_resolves_and_checks_the_id(fake: FakeDatadog) -> None:
    incident_id = create_incident(fake)["id"]
    resolved = {"fields": {"state": {"type": "dropdown", "value": "resolved"}}}
    path = f"/api/v2/incidents/{incident_id}"
    wrong = {"data": {"id": "other", "type": "incidents", "attributes": resolved}}
    assert call(fake, "PATCH", path, wrong)[0] == 400
    bad_time = {
        "data": {
            "id": incident_id,
            "type": "incidents",
            "attributes": {"customer_impact_end": "soon"},
        }
    }
    assert call(fake, "PATCH", path, bad_time)[0] == 400
    status, answer = call(
        fake,
        "PATCH",
        path,
        {"data": {"id": incident_id, "type": "incidents", "attributes": resolved}},
    )
    assert status == 200
    assert answer["data"]["attributes"]["state"] == "resolved"
    assert answer["data"]["attributes"]["resolved"] is not None
    missing = {"data": {"id": "nope", "type": "incidents", "attributes": resolved}}
    assert call(fake, "PATCH", "/api/v2/incidents/nope", missing) == (
        404,
        {"errors": ["Not found"]},
    )


def test_search_filters_by_facets_and_sorts(fake: FakeDatadog) -> None:
    first = create_incident(fake, title="first")["id"]
    second = create_incident(fake, title="second")["id"]
    resolved = {"fields": {"state": {"type": "dropdown", "value": "resolved"}}}
    call(
        fake,
        "PATCH",
        f"/api/v2/incidents/{first}",
        {"data": {"id": first, "type": "incidents", "attributes": resolved}},
    )
    status, answer = call(
        fake, "GET", "/api/v2/incidents/search?query=state%3A%28active%20OR%20stable%29"
    )
    assert status == 200
    assert answer["data"]["type"] == "incidents_search_results"
    found = answer["data"]["attributes"]["incidents"]
    assert [i["data"]["id"] for i in found] == [second]
    _, answer = call(
        fake, "GET", "/api/v2/incidents/search?query=state%3A%28active+OR+resolved%29&sort=-created"
    )
    assert [i["data"]["id"] for i in answer["data"]["attributes"]["incidents"]] == [second, first]
    assert answer["data"]["attributes"]["total"] == 2


@pytest.mark.parametrize(
    "query", ["", "?query=colour%3Ared", "?query=state%3Aactive&sort=newest", "?query=a%3A%28b"]
)
def test_search_rejects_bad_queries(fake: FakeDatadog, query: str) -> None:
    status, answer = call(fake, "GET", f"/api/v2/incidents/search{query}")
    assert status == 400 and answer["errors"]


def test_search_pages_by_offset_up_to_100(fake: FakeDatadog) -> None:
    for n in range(150):
        fake.add_incident(f"incident {n}")
    base = "/api/v2/incidents/search?query=state%3Aactive&sort=-created"
    _, first = call(fake, "GET", f"{base}&page%5Bsize%5D=100")
    _, second = call(fake, "GET", f"{base}&page%5Bsize%5D=100&page%5Boffset%5D=100")
    titles = [
        i["data"]["attributes"]["title"]
        for page in (first, second)
        for i in page["data"]["attributes"]["incidents"]
    ]
    assert titles == [f"incident {n}" for n in reversed(range(150))]
    assert second["data"]["attributes"]["total"] == 150
    _, default = call(fake, "GET", base)
    assert len(default["data"]["attributes"]["incidents"]) == 10  # page[size] defaults to 10
    for bad in ("page%5Bsize%5D=101", "page%5Bsize%5D=0", "page%5Boffset%5D=-1"):
        assert call(fake, "GET", f"{base}&{bad}")[0] == 400


def test_search_sorts_by_creation_time(fake: FakeDatadog) -> None:
    from datetime import UTC, datetime

    older = fake.add_incident("older", created=datetime(2026, 1, 1, tzinfo=UTC))
    newer = fake.add_incident("newer")
    _, answer = call(fake, "GET", "/api/v2/incidents/search?query=state%3Aactive&sort=-created")
    assert [i["data"]["id"] for i in answer["data"]["attributes"]["incidents"]] == [newer, older]


def test_attachments_are_checked_and_listed(fake: FakeDatadog) -> None:
    incident_id = create_incident(fake)["id"]
    path = f"/api/v2/incidents/{incident_id}/attachments"

    def body(kind: str, **attachment: Any) -> dict[str, Any]:
        attributes = {"attachment_type": kind, "attachment": attachment}
        return {"data": {"type": "incident_attachments", "attributes": attributes}}

    assert call(fake, "POST", path, body("note", documentUrl="https://x", title="t"))[0] == 400
    assert call(fake, "POST", path, body("link", title="t"))[0] == 400
    assert call(fake, "POST", path, body("link", documentUrl="javascript:x", title="t"))[0] == 400
    status, created = call(fake, "POST", path, body("link", documentUrl="https://x", title="t"))
    assert status == 201
    assert created["data"]["attributes"]["attachment"] == {"documentUrl": "https://x", "title": "t"}
    assert call(fake, "GET", path) == (200, {"data": [created["data"]]})
    assert call(fake, "GET", "/api/v2/incidents/nope/attachments")[0] == 404


def test_incident_answers_fit_the_sdk_models(fake: FakeDatadog) -> None:
    from datadog_api_client.v2.model.incident_create_request import IncidentCreateRequest

    api = IncidentsApi(sdk(fake))  # type: ignore[no-untyped-call]
    created = api.create_incident(IncidentCreateRequest(**incident_body()))
    incident_id = created.data.id
    assert (
        api.get_incident(incident_id).data.attributes.public_id == created.data.attributes.public_id
    )
    found = api.search_incidents("state:active")
    assert found.data.attributes.incidents[0].data.id == incident_id


# -- notebooks -----------------------------------------------------------------------------


def test_create_notebook_answers_like_datadog(fake: FakeDatadog) -> None:
    status, answer = call(fake, "POST", "/api/v1/notebooks", notebook_body())
    assert status == 200
    data = answer["data"]
    assert isinstance(data["id"], int) and data["type"] == "notebooks"
    (cell,) = data["attributes"]["cells"]
    assert re.fullmatch(r"[a-z0-9]{8}", cell["id"])
    assert data["attributes"]["time"] == {"live_span": "1h"}
    assert data["attributes"]["status"] == "published"


def timeseries(**definition: Any) -> dict[str, Any]:
    base = {
        "type": "timeseries",
        "requests": [{"q": "avg:system.load.1{*}", "display_type": "line"}],
    }
    return {"type": "notebook_cells", "attributes": {"definition": {**base, **definition}}}


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"name": "n" * 81}, "longer than 80"),
        ({"time": None}, "time: required"),
        ({"time": {"live_span": "2h"}}, "is not a live span"),
        (
            {"time": {"start": "2026-01-01T01:00:00+00:00", "end": "2026-01-01T00:00:00+00:00"}},
            "before end",
        ),
        (
            {"time": {"start": "yesterday", "end": "2026-01-01T00:00:00+00:00"}},
            "expected a date-time",
        ),
        ({"cells": [timeseries(type="pie")]}, "not a notebook cell type"),
        ({"cells": [timeseries(requests=[])]}, "needs at least 1"),
        (
            {"cells": [timeseries(requests=[{"q": "x", "display_type": "dots"}])]},
            "not a display type",
        ),
        (
            {
                "cells": [
                    {"type": "notebook_cells", "attributes": {"definition": {"type": "markdown"}}}
                ]
            },
            "text: required",
        ),
        ({"cells": [{"type": "cells", "attributes": {}}]}, "must be 'notebook_cells'"),
        ({"status": "draft"}, "must be 'published'"),
        ({"metadata": {"type": "rca"}}, "is not a notebook type"),
    ],
)
def test_create_notebook_rejects_what_datadog_rejects(
    fake: FakeDatadog, attributes: dict[str, Any], error: str
) -> None:
    status, answer = call(fake, "POST", "/api/v1/notebooks", notebook_body(**attributes))
    assert status == 400
    assert error in answer["errors"][0]
    assert fake.notebooks() == []


def test_update_replaces_cells_and_keeps_ids(fake: FakeDatadog) -> None:
    _, created = call(
        fake, "POST", "/api/v1/notebooks", notebook_body(cells=[timeseries(), timeseries()])
    )
    notebook_id = created["data"]["id"]
    first, second = created["data"]["attributes"]["cells"]
    path = f"/api/v1/notebooks/{notebook_id}"
    unknown = {**first, "id": "zzzzzzzz"}
    assert call(fake, "PUT", path, notebook_body(cells=[unknown]))[0] == 400
    added = {
        "type": "notebook_cells",
        "attributes": {"definition": {"type": "markdown", "text": "new"}},
    }
    status, answer = call(fake, "PUT", path, notebook_body(cells=[second, added]))
    assert status == 200
    ids = [c["id"] for c in answer["data"]["attributes"]["cells"]]
    assert ids[0] == second["id"] and ids[1] not in (first["id"], second["id"])
    (stored,) = fake.notebooks()
    assert stored.updates == 1 and stored.markdown() == ["new"]
    assert call(fake, "GET", "/api/v1/notebooks/999") == (404, {"errors": ["Notebook not found"]})


def test_list_notebooks_searches_names(fake: FakeDatadog) -> None:
    call(fake, "POST", "/api/v1/notebooks", notebook_body(name="RCA: payments [rsp-abc]"))
    call(fake, "POST", "/api/v1/notebooks", notebook_body(name="RCA: checkout"))
    status, answer = call(fake, "GET", "/api/v1/notebooks?query=rsp-abc&include_cells=false")
    assert status == 200
    (found,) = answer["data"]
    assert found["attributes"]["name"] == "RCA: payments [rsp-abc]"
    assert "cells" not in found["attributes"]
    assert answer["meta"]["page"] == {"total_count": 2, "total_filtered_count": 1}
    assert call(fake, "GET", "/api/v1/notebooks?include_cells=maybe")[0] == 400


def test_notebook_answers_fit_the_sdk_models(fake: FakeDatadog) -> None:
    from datadog_api_client.v1.model.notebook_create_request import NotebookCreateRequest

    api = NotebooksApi(sdk(fake))  # type: ignore[no-untyped-call]
    body = notebook_body(cells=[timeseries(), notebook_body()["data"]["attributes"]["cells"][0]])
    created = api.create_notebook(NotebookCreateRequest(**body))
    assert api.get_notebook(created.data.id).data.attributes.name == "RCA"
    assert api.list_notebooks(query="RCA").data[0].id == created.data.id


# -- workflow instances --------------------------------------------------------------------------


def test_workflow_instances_start_run_and_finish(fake: FakeDatadog) -> None:
    path = f"/api/v2/workflows/{WORKFLOW}/instances"
    fake.finish_instances("SUCCEEDED", after_polls=1)
    status, answer = call(fake, "POST", path, {"meta": {"payload": {"replicas": 6}}})
    assert status == 200
    instance_id = answer["data"]["id"]
    assert UUID.match(instance_id) and answer["meta"] == {"workflowId": WORKFLOW}
    _, first = call(fake, "GET", f"{path}/{instance_id}")
    assert first["data"]["attributes"]["instanceStatus"]["detailsKind"] == "IN_PROGRESS"
    assert first["data"]["attributes"]["inputs"] == {"replicas": 6}
    _, second = call(fake, "GET", f"{path}/{instance_id}")
    assert second["data"]["attributes"]["instanceStatus"]["detailsKind"] == "SUCCEEDED"
    assert "endTimestamp" in second["data"]["attributes"]
    other = fake.add_instance(WORKFLOW, {})
    _, listed = call(fake, "GET", f"{path}?page%5Bsize%5D=10")
    assert [i["id"] for i in listed["data"]] == [other, instance_id]
    assert listed["meta"]["succeededCount"] == 1


def test_workflow_errors_are_json_api_objects(fake: FakeDatadog) -> None:
    status, answer = call(fake, "POST", "/api/v2/workflows/nope/instances", {})
    assert status == 404
    assert answer["errors"][0]["code"] == "WORKFLOW_NOT_FOUND"
    status, answer = call(fake, "GET", f"/api/v2/workflows/{WORKFLOW}/instances/nope")
    assert (status, answer["errors"][0]["code"]) == (404, "INSTANCE_NOT_FOUND")
    bad = {"meta": {"payload": ["not", "an", "object"]}}
    assert call(fake, "POST", f"/api/v2/workflows/{WORKFLOW}/instances", bad)[0] == 400


def test_workflow_instances_page_newest_first_up_to_100(fake: FakeDatadog) -> None:
    made = [fake.add_instance(WORKFLOW, {"n": n}) for n in range(150)]
    path = f"/api/v2/workflows/{WORKFLOW}/instances?page%5Bsize%5D=100"
    _, first = call(fake, "GET", path)
    _, second = call(fake, "GET", f"{path}&page%5Bnumber%5D=1")
    listed = [i["id"] for page in (first, second) for i in page["data"]]
    assert listed == list(reversed(made))
    assert first["meta"]["page"]["totalCount"] == 150
    assert call(fake, "GET", f"/api/v2/workflows/{WORKFLOW}/instances?page%5Bsize%5D=101")[0] == 400


def test_workflow_answers_fit_the_sdk_models(fake: FakeDatadog) -> None:
    from datadog_api_client.v2.model.workflow_instance_create_request import (
        WorkflowInstanceCreateRequest,
    )

    api = WorkflowAutomationApi(sdk(fake))  # type: ignore[no-untyped-call]
    body = WorkflowInstanceCreateRequest(meta={"payload": {"a": 1}})  # type: ignore[arg-type]
    instance_id = api.create_workflow_instance(WORKFLOW, body).data.id
    got = api.get_workflow_instance(WORKFLOW, instance_id)
    assert got.data.attributes["instanceStatus"]["detailsKind"] == "IN_PROGRESS"
    assert api.list_workflow_instances(WORKFLOW).data[0].id == instance_id


# -- fault injection -------------------------------------------------------------------------


def test_fail_next_answers_the_status_then_recovers(fake: FakeDatadog) -> None:
    fake.fail_next("CreateIncident", 429, count=2, retry_after="3", rate_limit_reset="7")
    for _ in range(2):
        request = urllib.request.Request(
            fake.base_url + "/api/v2/incidents",
            json.dumps(incident_body()).encode(),
            {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 429
        assert info.value.headers["Retry-After"] == "3"
        assert info.value.headers["X-RateLimit-Reset"] == "7"
        assert json.loads(info.value.read()) == {"errors": ["Too many requests"]}
    assert call(fake, "POST", "/api/v2/incidents", incident_body())[0] == 201
    assert len(fake.incidents()) == 1


def test_delay_does_the_work_then_answers_late(fake: FakeDatadog) -> None:
    fake.delay_next("CreateIncident", 1.0)
    request = urllib.request.Request(
        fake.base_url + "/api/v2/incidents",
        json.dumps(incident_body()).encode(),
        {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY},
        method="POST",
    )
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(request, timeout=0.3)
    assert len(fake.incidents()) == 1  # created; only the answer was lost


def test_down_refuses_connections_until_up(fake: FakeDatadog) -> None:
    fake.down()
    with pytest.raises(urllib.error.URLError) as info:
        call(fake, "GET", "/api/v1/notebooks")
    assert isinstance(info.value.reason, ConnectionRefusedError)
    fake.up()
    assert call(fake, "GET", "/api/v1/notebooks")[0] == 200
