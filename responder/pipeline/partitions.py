"""Which sequencer partition an event goes to: everything that can touch one incident shares
one, so that several workers process events at once while each incident's events keep
their order.

An incident is made of one monitor + scope's events (its cycles, flapping), or, when a
playbook groups, of every monitor + scope whose tags give the same grouping key. The event
goes where its grouped incident's events go if a playbook groups it, else where its
monitor + scope's go. Dealt once, when the event is stored: a playbook change later re-deals
new events only, as it regroups only new incidents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from responder.domain import Alert, group_key
from responder.pipeline.grouping import grouping_of
from responder.playbooks.schema import Playbook
from responder.store.events import partition_for


class Dealer:
    def __init__(self, playbooks: Callable[[], Sequence[Playbook]]) -> None:
        self._playbooks = playbooks

    def __call__(self, alert: Alert) -> int:
        playbooks = self._playbooks()
        grouping = grouping_of(playbooks, alert) if _any_groups(playbooks) else None
        return partition_for(grouping or group_key(alert))


def _any_groups(playbooks: Sequence[Playbook]) -> bool:
    return any(playbook.group_by for playbook in playbooks)
