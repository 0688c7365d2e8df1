"""Hypothesis profiles for the property tests and the API fuzzing, and the values they share.

`HYPOTHESIS_PROFILE=deep` runs twenty times the examples, to hunt rather than to guard.
CI (`CI` set) draws the same examples every run, so a red build is never a coin toss;
elsewhere each run draws new ones and keeps what failed in .hypothesis/ to replay it.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile("dev", max_examples=100)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None)
settings.register_profile("deep", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def budget(share: float, **overrides: Any) -> settings:
    """`share` of the profile's examples. Tests that reach the database or the network pass
    deadline=None: one slow fsync says nothing about the input."""
    examples = max(5, int(settings.default.max_examples * share))  # type: ignore[union-attr]
    return settings(
        max_examples=examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        **overrides,
    )


# Values that mean something to the webhook or the loader, beside arbitrary ones.
TELLING_TEXT = st.sampled_from(
    [
        "",
        " ",
        "$ALERT_TITLE",
        "$",
        "[Triggered] CPU high",
        "[P1] [Re-Triggered on {host:a,b}] CPU high",
        "[Recovered on {}] x",
        "[",
        "P0",
        "p3",
        "Recovered",
        "No Data",
        "1795341600000",
        "1e400",
        "-1",
        "nan",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "\x00",
        "a\u202eb\u0000c\x1b[31m",
        "{{ 7*7 }}",
        "{% raw %}",
        "<!channel>",
        "*",
        "[!]",
        "99999999999d",
        "0s",
        "env:NOPE",
    ]
)
# Around the webhook's longest field (64 KiB).
LONG_TEXT = st.integers(min_value=65_530, max_value=65_540).map(lambda n: "x" * n)
TEXT = st.one_of(
    TELLING_TEXT, st.text(max_size=40), st.from_regex(r"\d{1,25}[smhd]", fullmatch=True)
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
