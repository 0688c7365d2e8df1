"""A retry's search for what its uncertain attempt created, page by page, to a clear verdict.

Found, or provably absent (the list ended, or reached objects older than the incident, which
no attempt of this run can have made), or not known: the bound was reached or the search
was refused. The last is said in the run's result (`note`, `lookup.complete`), never silent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from integrations.datadog.client import Json
from responder.actions import ActionContext, ActionError

# Our clock (the incident's opening) against Datadog's (an object's creation): a generous
# margin, since it only costs a page or two more.
CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Lookup:
    found: Json | None
    pages: int  # list requests made
    examined: int  # objects looked at
    complete: bool  # True: `found` is ours, or there is provably none
    note: str | None = None  # why it is not complete

    def audit(self) -> dict[str, Any]:
        return {"pages": self.pages, "examined": self.examined, "complete": self.complete}


def floor(ctx: ActionContext) -> datetime:
    """No attempt of this run can have created anything before this moment."""
    return ctx.incident.opened_at - CLOCK_MARGIN


def look_for(
    what: str,
    read: Callable[[int], list[Json]],
    ours: Callable[[Json], Json | None],
    *,
    page_size: int,
    max_pages: int,
    older: Callable[[Json], bool] = lambda item: False,
) -> Lookup:
    """Pages `read(0)`, `read(1)`... until `ours` recognises an item, a short page ends the
    list, or `older` says an item (and so, in the list's order, all after it) predates us.

    A retryable failure is raised (busy or down: retry later rather than create twice); a
    permanent one (say a missing read permission) would fail the run on every retry and
    lose the object, so it ends the search as not known: a possible duplicate is less harm.
    """
    pages = examined = 0
    try:
        while pages < max_pages:
            items = read(pages)
            pages += 1
            for item in items:
                examined += 1
                found = ours(item)
                if found is not None:
                    return Lookup(found, pages, examined, complete=True)
                if older(item):
                    return Lookup(None, pages, examined, complete=True)
            if len(items) < page_size:
                return Lookup(None, pages, examined, complete=True)
    except ActionError as exc:
        if exc.retryable:
            raise
        note = f"not checked for an earlier {what}: {exc.message}"
        return Lookup(None, pages, examined, complete=False, note=note)
    note = (
        f"looked through {examined} {what}s in {pages} pages without finding ours or ruling"
        f" it out; created anew, which may be a second {what}"
    )
    return Lookup(None, pages, examined, complete=False, note=note)


def looked(lookup: Lookup | None) -> dict[str, Any]:
    """What a result says about its search: how far it went, and why it is unsure if it is."""
    if lookup is None:
        return {}
    said: dict[str, Any] = {"lookup": lookup.audit()}
    if lookup.note:
        said["note"] = lookup.note
    return said
