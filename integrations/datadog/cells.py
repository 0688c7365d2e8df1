"""Notebook cells (Notebooks API v1) as spec JSON: markdown, timeseries and log stream."""

from __future__ import annotations

from typing import Any, Literal

Cell = dict[str, Any]


def markdown_cell(text: str) -> Cell:
    return {
        "type": "notebook_cells",
        "attributes": {"definition": {"type": "markdown", "text": text}},
    }


def timeseries_cell(title: str, query: str, marker: str | None = None) -> Cell:
    definition: dict[str, Any] = {
        "type": "timeseries",
        "title": title[:200],
        "show_legend": True,
        "requests": [{"q": query, "display_type": "line"}],
    }
    if marker:
        definition["markers"] = [{"value": marker, "display_type": "error dashed"}]
    return {
        "type": "notebook_cells",
        # time None: the cell follows the notebook's own window.
        "attributes": {
            "definition": definition,
            "graph_size": "m",
            "split_by": {"keys": [], "tags": []},
            "time": None,
        },
    }


def log_stream_cell(title: str, query: str) -> Cell:
    return {
        "type": "notebook_cells",
        "attributes": {
            "definition": {
                "type": "log_stream",
                "title": title[:200],
                "query": query,
                "indexes": [],  # every index
                "columns": ["host", "service"],
                "show_date_column": True,
                "show_message_column": True,
                "message_display": "inline",
                "sort": {"column": "time", "order": "desc"},
            },
            "graph_size": "l",
            "time": None,
        },
    }


def signal_cell(kind: Literal["metric", "logs"], title: str, query: str) -> Cell:
    if kind == "logs":
        return log_stream_cell(title, query)
    return timeseries_cell(title, query)


def cell_text(cell: Any) -> str:
    """The markdown text of a cell as a notebook answer holds it; "" for other cells."""
    if not isinstance(cell, dict):
        return ""
    attributes = cell.get("attributes")
    definition = attributes.get("definition") if isinstance(attributes, dict) else None
    if isinstance(definition, dict) and definition.get("type") == "markdown":
        value = definition.get("text")
        return value if isinstance(value, str) else ""
    return ""


def cell_summary(cell: Cell) -> dict[str, Any]:
    """What `describe` shows of a cell: its type and its query or first line."""
    definition = cell["attributes"]["definition"]
    kind = definition.get("type")
    if kind == "markdown":
        first = str(definition.get("text", "")).strip().splitlines()
        return {"type": kind, "text": first[0][:120] if first else ""}
    if kind == "timeseries":
        return {"type": kind, "q": definition["requests"][0].get("q")}
    return {"type": kind, "query": definition.get("query")}
