"""The garbage collector's settings for a long-running process."""

from __future__ import annotations

import gc

from responder.memory import freeze_startup_heap


def test_startup_objects_are_left_out_of_later_collections() -> None:
    kept = [{"n": n, "tags": [n]} for n in range(1_000)]
    try:
        assert any(obj is kept for obj in gc.get_objects())
        freeze_startup_heap()
        assert not any(obj is kept for obj in gc.get_objects())
    finally:
        gc.unfreeze()
