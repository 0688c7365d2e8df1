"""How the pipeline treats a stream of alerts over time: reminder pace, when an incident is
stale, when a monitor flaps, when a channel is in a storm. The service's defaults; the
first three are overridable per playbook."""

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
    # Storm mode (`pipeline/storm.py`): more than `storm_rate` new incidents within a minute
    # in one channel (0: off) start a storm there; it ends once the channel has stayed at or
    # below the rate for `storm_quiet`. The storm summary is rewritten at most once per
    # `storm_every`, so that it never competes with Slack's limit of a message a second.
    storm_rate: int = 10  # RESPONDER_STORM_RATE
    storm_quiet: timedelta = timedelta(minutes=5)  # RESPONDER_STORM_QUIET
    storm_every: timedelta = timedelta(seconds=10)

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
