"""When to try a failed call again: exponential backoff with jitter, or the vendor's word."""

from __future__ import annotations

import random

BASE_SECONDS = 2.0
CAP_SECONDS = 300.0


def retry_delay(attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    rng = rng or random.Random()
    if retry_after is not None and retry_after >= 0:
        # The vendor said when; a little jitter keeps a burst of runs from returning at once.
        return min(retry_after, 3600.0) * (1 + rng.uniform(0, 0.1))
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return rng.uniform(ceiling / 2, ceiling)
