"""Token checks: every comparison is hmac.compare_digest over bytes, against every accepted
token, whichever matches; and what wrong lengths, empty values and non-ASCII tokens do."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

import responder.intake.auth as auth
from responder.intake.auth import presented_token, token_matches
from responder.main import Service
from tests.harness import running, sample, settings_for

ROTATION = ("first-token-AAAA", "second-token-BBBB", "third-token-CCCC")


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every pair token_matches hands to compare_digest (which still decides)."""
    pairs: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        pairs.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(auth, "hmac", SimpleNamespace(compare_digest=spy))
    return pairs


@pytest.mark.parametrize("which", [0, 1, 2, None])
def test_every_accepted_token_is_compared_whichever_matches(
    compared: list[tuple[bytes, bytes]], which: int | None
) -> None:
    presented = ROTATION[which].encode() if which is not None else b"none-of-them-XXXX"
    assert token_matches(presented, ROTATION) is (which is not None)
    # All three, in order, as bytes: no early exit after the first match.
    assert compared == [(presented, token.encode()) for token in ROTATION]


@pytest.mark.parametrize(
    "presented",
    [
        b"",  # empty
        b"first-token-AAA",  # a prefix: one byte short
        b"first-token-AAAAA",  # one byte long
        b"first-token-AAAA\x00",  # with a NUL after it
        b"x" * 10_000,  # far longer
        b" first-token-AAAA",  # surrounding space is not trimmed here
        "first-token-AAAÄ".encode(),  # same length in characters, longer in bytes
    ],
)
def test_wrong_tokens_do_not_match(compared: list[tuple[bytes, bytes]], presented: bytes) -> None:
    assert token_matches(presented, ROTATION) is False
    assert len(compared) == len(ROTATION)  # compared all the same, whatever the length


def test_nothing_presented_or_nothing_accepted_never_matches(
    compared: list[tuple[bytes, bytes]],
) -> None:
    assert token_matches(None, ROTATION) is False
    assert token_matches(b"", []) is False
    assert token_matches(b"anything", []) is False


def test_a_token_outside_ascii_matches_as_its_utf8_in_every_place() -> None:
    token = "jeton-Zürich-令牌"
    raw = token.encode("utf-8")
    as_server_decodes = raw.decode("latin-1")  # what Starlette hands over for the header
    basic = base64.b64encode(b"datadog:" + raw).decode()
    for headers in (
        {"x-responder-token": as_server_decodes},
        {"authorization": f"Bearer {as_server_decodes}"},
        {"authorization": f"Basic {basic}"},
    ):
        assert presented_token(headers) == raw
        assert token_matches(presented_token(headers), [token])
    assert not token_matches("jeton-Zurich-令牌".encode(), [token])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-responder-token": ""},
        {"authorization": "Bearer "},
        {"authorization": "Basic %%%"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"authorization": "Digest abc"},
    ],
)
def test_nothing_usable_is_presented(headers: dict[str, str]) -> None:
    assert presented_token(headers) is None


@pytest.fixture
def app(migrated_url: str) -> Iterator[tuple[Service, TestClient]]:
    settings = settings_for(
        migrated_url,
        RESPONDER_WEBHOOK_TOKEN=" hook-Ünïcode-1 , hook-plain-2 ",
        RESPONDER_API_TOKEN="api-Ünïcode-1",
    )
    with running(settings) as pair:
        yield pair


def test_the_service_compares_every_token_it_checks(
    app: tuple[Service, TestClient],
    samples_dir: Path,
    compared: list[tuple[bytes, bytes]],
) -> None:
    _, client = app
    body = sample(samples_dir, "api-latency.warn")
    hook = "hook-Ünïcode-1".encode()
    answer = client.post("/webhooks/datadog", json=body, headers={b"X-Responder-Token": hook})
    assert answer.status_code == 202, answer.text
    assert compared == [(hook, hook), (hook, b"hook-plain-2")]
    wrong = client.post("/webhooks/datadog", json=body, headers={"X-Responder-Token": "hook"})
    assert wrong.status_code == 401
    assert "nïcode" not in wrong.text and "plain-2" not in wrong.text

    compared.clear()
    api = "api-Ünïcode-1".encode()
    listed = client.get("/api/incidents", headers={b"Authorization": b"Bearer " + api})
    assert listed.status_code == 200, listed.text
    assert compared == [(api, api)]
    refused = client.get("/api/incidents", headers={"Authorization": "Bearer api-"})
    assert refused.status_code == 401
    assert "nïcode" not in refused.text
