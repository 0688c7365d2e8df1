"""The redactor masks a secret as it is and as it is echoed: JSON-escaped, URL-encoded, and
inside base64 at any offset (an `Authorization: Basic` header a vendor repeats back)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from responder.redact import REDACTED, Redactor

SECRET = 'tok/en+"Zq8r T2vN5mXa?'  # every character class the encodings treat specially


PLAIN = [SECRET, json.dumps(SECRET)[1:-1], quote(SECRET, safe=""), quote_plus(SECRET)]


@pytest.mark.parametrize("echo", PLAIN)
def test_an_echoed_secret_is_masked(echo: str) -> None:
    text = Redactor([SECRET]).redact_text(f"credentials {echo} rejected")
    assert text == f"credentials {REDACTED} rejected"


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b"api:x"])
def test_a_secret_inside_base64_is_masked_at_any_offset(
    encode: Callable[[bytes], bytes], prefix: bytes
) -> None:
    echo = encode(prefix + SECRET.encode()).decode()
    text = Redactor([SECRET]).redact_text(f"credentials {echo} rejected")
    remains = text.removeprefix("credentials ").removesuffix(" rejected")
    assert REDACTED in remains
    # Only the characters of the prefix and the edges where its bits and the secret's mix.
    assert len(remains.replace(REDACTED, "")) <= len(encode(prefix)) + 4


def test_a_secret_that_extends_another_is_masked_whole() -> None:
    redactor = Redactor(["abc-secret", "abc-secret-longer", "x" * 5000])
    text = "abc-secret-longer, abc-secret, abc-secre, " + "x" * 5001
    assert redactor.redact_text(text) == f"{REDACTED}, {REDACTED}, abc-secre, {REDACTED}x"


def test_ordinary_text_and_short_values_are_left_alone() -> None:
    redactor = Redactor(["12345", "", "Sq7Yd2Lk9Pw4"])
    text = "Failure rate 12345 over 5m on payments (Basic dXNlcjpwYXNz)"
    assert redactor.redact_text(text) == text
    assert Redactor([]).redact_text(text) == text


def test_keys_that_name_a_secret_are_masked_whatever_their_value() -> None:
    redacted = Redactor([]).redact({"api_key": "anything", "nested": [{"token": 7}]})
    assert redacted == {"api_key": REDACTED, "nested": [{"token": REDACTED}]}
