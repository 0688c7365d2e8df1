"""The playbook set a process runs now, and what became of the last attempt to replace it.

A new set is built and validated whole (`build`) before anything sees it; `adopt` swaps it
in at once, `refuse` keeps the running set and remembers why the new one was turned down.
Readers call `current()` once per unit of work (a batch, a delivery) and keep what they got:
a swap never changes a list under a reader, and the same list comes back until a swap, so
a reader can tell a new set by its identity.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from responder.actions import StepParams
from responder.playbooks.loader import PlaybookError, load_playbooks, playbook_files
from responder.playbooks.maintenance import MaintenanceWindow, load_maintenance, maintenance_files
from responder.playbooks.schema import Playbook


@dataclass(frozen=True, slots=True)
class PlaybookSet:
    """Validated playbooks, in load order, the maintenance windows beside them, and one
    digest of them all."""

    playbooks: list[Playbook]
    digest: str
    loaded_at: datetime
    windows: tuple[MaintenanceWindow, ...] = ()

    @classmethod
    def of(
        cls,
        playbooks: list[Playbook],
        windows: Sequence[MaintenanceWindow] = (),
        windows_digest: str = "",
    ) -> PlaybookSet:
        # Each playbook's own content hash, in load order (which decides matching order),
        # and the windows' file: editing only a window is a change too.
        lines = "".join(f"{p.name}\0{p.content_hash}\n" for p in playbooks)
        lines += f"maintenance\0{windows_digest}\n" if windows_digest else ""
        digest = hashlib.sha256(lines.encode("utf-8")).hexdigest()
        return cls(playbooks, digest, datetime.now(UTC), tuple(windows))

    def hashes(self) -> dict[str, str]:
        return {playbook.name: playbook.content_hash for playbook in self.playbooks}


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why the files on disk are not what runs: the loader's "FILE:LINE: problem" lines."""

    errors: list[str]
    at: datetime


@dataclass(frozen=True, slots=True)
class Reload:
    """One reload's outcome: `changed`, `unchanged` or `failed`, with both sets' names."""

    result: str
    trigger: str
    old: PlaybookSet
    new: PlaybookSet | None  # None when failed
    failure: LoadFailure | None = None
    recovered: bool = False  # the set before this one had been refused

    def changes(self) -> dict[str, list[str]]:
        """Playbook names added, removed and changed (content hash differs) by this reload."""
        before = self.old.hashes()
        after = self.new.hashes() if self.new is not None else before
        return {
            "added": sorted(after.keys() - before.keys()),
            "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
        }


class PlaybookLibrary:
    def __init__(
        self, folder: Path, params_models: Mapping[str, type[StepParams]], first: PlaybookSet
    ) -> None:
        self.folder = folder
        self._params_models = params_models
        self._set = first
        self._failure: LoadFailure | None = None
        self._lock = threading.Lock()  # one swap at a time; reading needs no lock

    @classmethod
    def load(cls, folder: Path, params_models: Mapping[str, type[StepParams]]) -> PlaybookLibrary:
        """The folder's playbooks, or PlaybookError: a process never starts on a bad set."""
        return cls(folder, params_models, _read(folder, params_models))

    def current(self) -> Sequence[Playbook]:
        return self._set.playbooks

    def windows(self) -> Sequence[MaintenanceWindow]:
        """The running set's maintenance windows (`maintenance.yaml`), reloaded with it."""
        return self._set.windows

    @property
    def active(self) -> PlaybookSet:
        return self._set

    @property
    def failure(self) -> LoadFailure | None:
        """Set while the folder holds a set that was refused; cleared by the next good one."""
        return self._failure

    def fingerprint(self) -> str:
        """A digest of the files the loader would read (names and bytes): it changes with
        any edit, however quick, and with a swapped symlink (a Kubernetes ConfigMap)."""
        digest = hashlib.sha256()
        try:
            for path in [*playbook_files(self.folder), *maintenance_files(self.folder)]:
                digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
                try:
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
                except OSError as exc:  # gone meanwhile, or unreadable: the loader will say
                    digest.update(f"unreadable {exc.errno}".encode())
        except OSError as exc:
            return f"folder unreadable: {exc.errno}"
        return digest.hexdigest()

    def build(self) -> PlaybookSet:
        """The folder's playbooks as a new set, validated whole; raises PlaybookError.
        Nothing running sees it until `adopt`."""
        return _read(self.folder, self._params_models)

    def adopt(self, new: PlaybookSet, trigger: str) -> Reload:
        with self._lock:
            old, recovered = self._set, self._failure is not None
            self._failure = None
            if new.digest == old.digest:
                return Reload("unchanged", trigger, old, old, recovered=recovered)
            self._set = new
            return Reload("changed", trigger, old, new, recovered=recovered)

    def refuse(self, errors: list[str], trigger: str) -> Reload:
        """Keep the running set; `errors` (the loader's lines) say why the new one is not."""
        with self._lock:
            self._failure = LoadFailure(list(errors), datetime.now(UTC))
            return Reload("failed", trigger, self._set, None, self._failure)


def _read(folder: Path, params_models: Mapping[str, type[StepParams]]) -> PlaybookSet:
    """Playbooks and maintenance windows, each file's problems reported together."""
    errors: list[str] = []
    playbooks: list[Playbook] = []
    windows: list[MaintenanceWindow] = []
    try:
        playbooks = load_playbooks(folder, params_models)
    except PlaybookError as exc:
        errors += exc.errors
    try:
        windows = load_maintenance(folder)
    except PlaybookError as exc:
        errors += exc.errors
    if errors:
        raise PlaybookError(errors)
    digest = hashlib.sha256()
    for path in maintenance_files(folder):
        digest.update(path.read_bytes())
    return PlaybookSet.of(playbooks, windows, digest.hexdigest() if windows else "")
