"""A monitor's query turned into something a notebook can graph.

A metric monitor's query is `<reducer>(<window>):<metric query> <comparator> <threshold>`,
e.g. `avg(last_10m):sum:errors{env:prod}.as_count() > 5`. The graph wants only the middle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# `> 5`, `>= 0.05`, `< -1e3` at the very end: the alert condition, not part of the series.
_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
_WRAPPER_NAME = re.compile(r"^[a-z_]+\(")
_LOGS = re.compile(r'^logs\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
_METRIC = re.compile(r"[a-z0-9_.]+\{[^}]*\}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GraphQuery:
    kind: Literal["metric", "logs"]
    query: str  # a metric query for `q`, or a log search
    comparator: str | None = None
    threshold: str | None = None

    @property
    def marker(self) -> str | None:
        """A timeseries marker drawing the alert threshold, e.g. "y = 5"."""
        return f"y = {self.threshold}" if self.threshold is not None else None


def graph_query(monitor_query: str | None) -> GraphQuery | None:
    """The graphable part of a monitor query; None for composite, check and event monitors."""
    if not monitor_query or not monitor_query.strip():
        return None
    rest = _strip_wrapper(monitor_query.strip())
    comparator = threshold = None
    condition = _CONDITION.search(rest)
    if condition is not None:
        comparator, threshold = condition.group(1), condition.group(2)
        rest = rest[: condition.start()].strip()
    logs = _LOGS.match(rest)
    if logs is not None:
        # A log monitor: `logs("service:x").index("*").rollup("count").last("5m")`.
        search = logs.group(1).replace('\\"', '"')
        return GraphQuery("logs", search, comparator, threshold)
    if not rest or not _METRIC.search(rest):
        return None
    return GraphQuery("metric", rest, comparator, threshold)


def _strip_wrapper(query: str) -> str:
    """`avg(last_5m):x` -> `x`; `change(avg(last_5m),last_5m):x` -> `x`; else unchanged."""
    if not _WRAPPER_NAME.match(query):
        return query
    depth = 0
    for index, char in enumerate(query):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                after = query[index + 1 :].lstrip()
                return after[1:].strip() if after.startswith(":") else query
    return query
