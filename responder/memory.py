"""How the garbage collector behaves in a long-running service process."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Exempt everything built at startup from later collections.

    Settings, playbooks, SDK clients and the libraries' own module state come to well over
    a hundred thousand objects that live as long as the process. A full collection walks
    every tracked object while holding the GIL, so each one paused every thread, the
    intake's acknowledgements included, for tens of milliseconds; frozen, they are skipped.
    """
    gc.collect()
    gc.freeze()
