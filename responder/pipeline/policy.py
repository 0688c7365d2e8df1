"""How the pipeline treats a stream of alerts over time: reminder pace, when an incident is
stale, when a monitor flaps. The service's defaults, each overridable per playbook."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from responder.playbooks.schema import FlapSpec, Playbook


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    reminder_interval: timedelta = timedelta(hours=1)  # RESPONDER_REMINDER_INTERVAL
    stale_after: timedelta | None = timedelta(hours=24)  # RESPONDER_STALE_AFTER; None: never
    flapping: FlapSpec = field(default_factory=FlapSpec)

    def stale_after_for(self, playbooks: Iterable[Playbook]) -> timedelta | None:
        """The shortest `stale_after` of the incident's playbooks, else the default; a
        playbook saying `off` keeps its incidents open for as long as it takes."""
        chosen = list(playbooks)
        if any(playbook.stale_off for playbook in chosen):
            return None
        own = [p.stale_after for p in chosen if p.stale_after is not None]
        return min(own) if own else self.stale_after

    def flapping_for(self, playbooks: Iterable[Playbook]) -> FlapSpec:
        """The first of the incident's playbooks (in file order) that says, else the default."""
        for playbook in playbooks:
            if playbook.flapping is not None:
                return playbook.flapping
        return self.flapping
