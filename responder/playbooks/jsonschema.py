"""A JSON Schema of playbook files for editors (`responder playbooks schema`): the document
and match models, and each action's own params. The loader stays the judge; this lets an
editor complete keys and flag mistakes while the file is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from responder.actions import StepParams
from responder.playbooks.schema import SUPPORTED_CONDITIONS, PlaybookDocument

Schema = dict[str, Any]

DURATION: Schema = {
    "type": "string",
    "pattern": r"^\s*(\d+d)?(\d+h)?(\d+m)?(\d+s)?\s*$",
    "description": "a duration: 30s, 10m, 2h, 1d, or combined like 1h30m",
}
_TEXTS: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def playbook_json_schema(params_models: Mapping[str, type[StepParams]]) -> Schema:
    """The schema of one playbook file's document, each step checked against its action."""
    names = sorted(params_models)
    _, schema = models_json_schema(
        [(PlaybookDocument, "validation"), *((params_models[n], "validation") for n in names)],
        ref_template="#/$defs/{model}",
    )
    defs: Schema = schema["$defs"]
    document = defs.pop("PlaybookDocument")
    _as_written(document, defs)
    document["properties"]["actions"] = {
        "type": "array",
        "description": "the steps, in order: each a mapping of one action to its params",
        "items": {"oneOf": [_step(name, params_models[name], defs) for name in names]},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **document,
        "title": "responder playbook",
        "$defs": defs,
    }


def _step(name: str, model: type[StepParams], defs: Schema) -> Schema:
    params = defs.pop(model.__name__, None) or {"type": "object"}
    params = _durations({**params})
    properties = {
        **params.get("properties", {}),
        "after": {**DURATION, "description": "run this step this long after the alert"},
        "if": {
            "enum": list(SUPPORTED_CONDITIONS),
            "description": "skip the step (audited) unless this still holds when it is due",
        },
    }
    body = {**params, "properties": properties, "additionalProperties": False}
    body.setdefault("title", model.__name__)
    return {
        "type": "object",
        "title": name,
        "required": [name],
        "additionalProperties": False,
        "properties": {
            name: {"anyOf": [body, {"type": "null"}]} if not body.get("required") else body
        },
    }


def _as_written(document: Schema, defs: Schema) -> None:
    """Where the loader takes more than the model's own types: one value or a list, `off`."""
    props = document["properties"]
    props.pop("stale_off", None)  # computed from `stale_after: off`, never written
    props["stale_after"] = {"anyOf": [DURATION, {"const": "off"}, {"const": False}]}
    props["group_window"] = DURATION
    props["group_by"] = _TEXTS
    props["flapping"] = {"anyOf": [{"$ref": "#/$defs/FlapSpec"}, {"type": "boolean"}]}
    props["match"] = {"anyOf": [{"$ref": "#/$defs/MatchSpec"}, {"type": "null"}]}
    match = defs["MatchSpec"]["properties"]
    match["tags"] = {"type": "object", "additionalProperties": _TEXTS}
    for key in ("priority", "transition", "monitor"):
        match[key] = {**_TEXTS, "description": "one value or a list; globs where names are"}
    _durations(defs["FlapSpec"])


def _durations(schema: Schema) -> Schema:
    for name, prop in schema.get("properties", {}).items():
        if isinstance(prop, dict) and (
            prop.get("format") == "duration"
            or any(p.get("format") == "duration" for p in prop.get("anyOf", []))
        ):
            schema["properties"][name] = DURATION
    return schema
