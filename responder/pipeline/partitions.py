"""Which sequencer partition an event goes to: everything that can touch one incident shares
one, so that several workers process events at once while each incident's events keep
their order.

An incident is made of one monitor + scope's events (its cycles, flapping), or, when a
playbook groups, of every monitor + scope whose tags give the same grouping key. Dealing
may be coarser than that, never finer:

- When every grouping playbook groups by some tags in common (the example playbooks all
  group by `service` and `env`), an alert with those tags goes by their values: every
  member of any grouped incident has them, and has the same values. A few dictionary
  look-ups per delivery, which matters, since the intake deals each one.
- Otherwise the alert goes by the grouping key its playbooks give it, the matcher's work.
- An alert that cannot be grouped goes by its monitor + scope.

Dealt once, when the event is stored: a playbook change later re-deals new events only, as
it regroups only new incidents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from responder.domain import Alert, group_key
from responder.pipeline.grouping import grouping_of
from responder.playbooks.schema import Playbook
from responder.store.events import partition_for


class Dealer:
    def __init__(self, playbooks: Callable[[], Sequence[Playbook]]) -> None:
        self._playbooks = playbooks  # the running set, which a reload replaces
        # What the set last read groups by: (that set, any grouping, the tags all share),
        # replaced in one assignment so that no caller sees one set's parts with another's.
        self._learned: tuple[Sequence[Playbook] | None, bool, tuple[str, ...]] = (None, False, ())

    def __call__(self, alert: Alert) -> int:
        return partition_for(self.key(alert))

    def key(self, alert: Alert) -> str:
        playbooks = self._playbooks()
        read, grouping, common = self._learned
        if playbooks is not read:  # a new set: what its grouping playbooks share
            read, grouping, common = self._learned = _learn(playbooks)
        if not grouping:
            return group_key(alert)
        if common:
            values = [alert.tag(name) for name in common]
            if any(value is None for value in values):
                return group_key(alert)  # never grouped: each grouping needs all of these
            return "tags|" + ",".join(f"{n}={v}" for n, v in zip(common, values, strict=True))
        return grouping_of(playbooks, alert) or group_key(alert)


def _learn(
    playbooks: Sequence[Playbook],
) -> tuple[Sequence[Playbook], bool, tuple[str, ...]]:
    sets = [set(playbook.group_by) for playbook in playbooks if playbook.group_by]
    return playbooks, bool(sets), tuple(sorted(set.intersection(*sets))) if sets else ()
