"""The Slack fake answers like Slack: what it accepts and rejects, driven by the real SDK."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-test"
CHANNELS = {"#payments-alerts": "C0PAY", "#ops": "C0OPS"}
TEXT = "hello"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels=CHANNELS) as server:
        yield server


def client(fake: FakeSlack, token: str | None = TOKEN, timeout: float = 5) -> WebClient:
    # urllib takes fractional seconds although the SDK annotates `timeout` as int.
    seconds: Any = timeout
    return WebClient(token=token, base_url=fake.base_url, timeout=seconds, retry_handlers=[])


def slack_error(call: Callable[[], Any]) -> tuple[int, str]:
    """(HTTP status, Slack error code) of a call that must fail."""
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value.response.status_code, info.value.response["error"]


def error_code(call: Callable[[], Any]) -> str:
    return slack_error(call)[1]


def post_json(web: WebClient, **body: Any) -> Any:
    # api_call skips the SDK's "missing text" warning, which pytest turns into an error.
    return web.api_call("chat.postMessage", json=body)


def raw_post(fake: FakeSlack, method: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(fake.base_url + method, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


# -- authentication ----------------------------------------------------------------------


def test_auth_test_answers_for_the_right_token(fake: FakeSlack) -> None:
    answer = client(fake).auth_test()
    assert answer["ok"] is True
    assert answer["user_id"] == "U0BOT"


def test_bad_or_missing_token_is_rejected(fake: FakeSlack) -> None:
    assert slack_error(lambda: client(fake, "xoxb-wrong").auth_test()) == (200, "invalid_auth")
    assert slack_error(lambda: client(fake, None).auth_test()) == (200, "not_authed")
    web = client(fake, "xoxb-wrong")
    assert error_code(lambda: web.chat_postMessage(channel="C0PAY", text=TEXT)) == "invalid_auth"
    assert fake.root_messages() == []


def test_token_in_a_form_field_is_accepted_but_not_in_a_json_body(fake: FakeSlack) -> None:
    form = urllib.parse.urlencode({"token": TOKEN, "channel": "C0PAY", "text": TEXT}).encode()
    answer = raw_post(
        fake, "chat.postMessage", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer["ok"] is True
    body = json.dumps({"token": TOKEN, "channel": "C0PAY", "text": TEXT}).encode()
    answer = raw_post(fake, "chat.postMessage", body, {"Content-Type": "application/json"})
    assert answer == {"ok": False, "error": "not_authed"}


def test_calls_are_recorded_without_the_token(fake: FakeSlack) -> None:
    form = urllib.parse.urlencode({"token": TOKEN, "channel": "C0PAY", "text": TEXT}).encode()
    raw_post(fake, "chat.postMessage", form, {"Content-Type": "application/x-www-form-urlencoded"})
    client(fake).auth_test()
    assert [name for name, _ in fake.calls] == ["chat.postMessage", "auth.test"]
    assert TOKEN not in repr(fake.calls)


# -- chat.postMessage ----------------------------------------------------------------------


def test_post_accepts_name_with_or_without_hash_and_id(fake: FakeSlack) -> None:
    web = client(fake)
    answers = [web.chat_postMessage(channel=c, text=TEXT) for c in ("#ops", "ops", "C0OPS")]
    assert {a["channel"] for a in answers} == {"C0OPS"}
    stamps = [a["ts"] for a in answers]
    assert all(re.fullmatch(r"\d{10}\.\d{6}", ts) for ts in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert [m.ts for m in fake.messages("C0OPS")] == stamps


def test_post_to_an_unknown_channel_is_channel_not_found(fake: FakeSlack) -> None:
    web = client(fake)
    for channel in ("#nowhere", "C0NOPE"):
        call = lambda: web.chat_postMessage(channel=channel, text=TEXT)  # noqa: E731, B023
        assert slack_error(call) == (200, "channel_not_found")


def test_post_without_text_or_blocks_is_no_text(fake: FakeSlack) -> None:
    web = client(fake)
    assert error_code(lambda: post_json(web, channel="C0PAY")) == "no_text"
    assert error_code(lambda: post_json(web, channel="C0PAY", text="  ", blocks=[])) == "no_text"
    divider = [{"type": "divider"}]
    assert post_json(web, channel="C0PAY", blocks=divider)["ok"] is True


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def fields(count: int, size: int = 5) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * size}] * count}


@pytest.mark.parametrize(
    "blocks",
    [
        [header("h" * 151)],
        [header("")],
        [{"type": "header", "text": {"type": "mrkdwn", "text": "*bold*"}}],
        [section("s" * 3001)],
        [fields(11)],
        [fields(1, size=2001)],
        [section("x")] * 51,
        [{"type": "marquee", "text": "hi"}],
        [{"type": "section"}],
        [{"type": "context", "elements": []}],
        ["not a block"],
    ],
    ids=[
        "header>150",
        "empty-header",
        "mrkdwn-header",
        "section>3000",
        "11-fields",
        "field>2000",
        "51-blocks",
        "unknown-type",
        "empty-section",
        "empty-context",
        "not-an-object",
    ],
)
def test_post_rejects_blocks_slack_rejects(fake: FakeSlack, blocks: list[Any]) -> None:
    web = client(fake)
    code = error_code(lambda: web.chat_postMessage(channel="C0PAY", text=TEXT, blocks=blocks))
    assert code in ("invalid_blocks", "invalid_blocks_format")
    assert fake.messages("C0PAY") == []


def test_post_accepts_blocks_at_the_limits(fake: FakeSlack) -> None:
    blocks = [header("h" * 150), section("s" * 3000), fields(10, size=2000)] + [section("x")] * 47
    answer = client(fake).chat_postMessage(channel="C0PAY", text=TEXT, blocks=blocks)
    assert answer["ok"] is True
    assert fake.messages("C0PAY")[0].blocks == blocks


def test_too_long_text_is_msg_too_long(fake: FakeSlack) -> None:
    web = client(fake)
    call = lambda: web.chat_postMessage(channel="C0PAY", text="x" * 40_001)  # noqa: E731
    assert error_code(call) == "msg_too_long"


def test_metadata_must_have_event_type_and_payload(fake: FakeSlack) -> None:
    web = client(fake)
    bad = {"event_type": "x"}
    call = lambda: web.chat_postMessage(channel="C0PAY", text=TEXT, metadata=bad)  # noqa: E731
    assert error_code(call) == "invalid_metadata_format"


# -- threads, history, update -----------------------------------------------------------------


def test_replies_need_an_existing_root(fake: FakeSlack) -> None:
    web = client(fake)
    root = web.chat_postMessage(channel="C0PAY", text="root")["ts"]
    web.chat_postMessage(channel="C0PAY", text="reply", thread_ts=root)
    web.chat_postMessage(channel="C0PAY", text="loud", thread_ts=root, reply_broadcast=True)
    assert [m.text for m in fake.replies("C0PAY", root)] == ["reply", "loud"]
    assert [m.reply_broadcast for m in fake.replies("C0PAY", root)] == [False, True]
    # The second is another channel's root: not a thread here either.
    for channel, ts in (("C0PAY", "1.000001"), ("C0OPS", root)):
        call = lambda: web.chat_postMessage(channel=channel, text="x", thread_ts=ts)  # noqa: E731, B023
        assert error_code(call) == "thread_not_found"


def test_history_lists_roots_and_broadcasts_newest_first(fake: FakeSlack) -> None:
    web = client(fake)
    meta = {"event_type": "responder_action", "event_payload": {"run_id": "r1"}}
    root = web.chat_postMessage(channel="C0PAY", text="root", metadata=meta)["ts"]
    web.chat_postMessage(channel="C0PAY", text="quiet", thread_ts=root)
    web.chat_postMessage(channel="C0PAY", text="loud", thread_ts=root, reply_broadcast=True)
    web.chat_postMessage(channel="C0OPS", text="elsewhere")

    plain = web.conversations_history(channel="C0PAY")
    assert [m["text"] for m in plain["messages"]] == ["loud", "root"]
    assert all("metadata" not in m for m in plain["messages"])  # only when asked for
    assert plain["messages"][1]["reply_count"] == 2

    full = web.conversations_history(channel="C0PAY", include_all_metadata=True, limit=1)
    assert [m["text"] for m in full["messages"]] == ["loud"]
    assert full["has_more"] is True
    full = web.conversations_history(channel="C0PAY", include_all_metadata=True)
    assert full["messages"][1]["metadata"] == meta


def test_history_pages_with_a_cursor_since_oldest(fake: FakeSlack) -> None:
    web = client(fake)
    sent = [web.chat_postMessage(channel="C0PAY", text=f"m{n}")["ts"] for n in range(12)]
    seen: list[str] = []
    cursor = None
    while True:
        page = web.conversations_history(channel="C0PAY", oldest=sent[1], limit=5, cursor=cursor)
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert seen == list(reversed(sent[2:]))  # `oldest` itself is left out


def test_history_rejects_a_bad_cursor_or_oldest(fake: FakeSlack) -> None:
    web = client(fake)
    history = web.conversations_history
    assert error_code(lambda: history(channel="C0PAY", cursor="bm9wZQ==")) == "invalid_cursor"
    assert error_code(lambda: history(channel="C0PAY", cursor="%%")) == "invalid_cursor"
    assert error_code(lambda: history(channel="C0PAY", oldest="soon")) == "invalid_ts_oldest"


def test_replies_page_the_thread_oldest_first(fake: FakeSlack) -> None:
    web = client(fake)
    root = web.chat_postMessage(channel="C0PAY", text="root")["ts"]
    replies = [
        web.chat_postMessage(channel="C0PAY", text=f"r{n}", thread_ts=root)["ts"] for n in range(7)
    ]
    web.chat_postMessage(channel="C0PAY", text="elsewhere")
    first = web.conversations_replies(channel="C0PAY", ts=root, limit=5)
    cursor = first["response_metadata"]["next_cursor"]
    second = web.conversations_replies(channel="C0PAY", ts=root, limit=5, cursor=cursor)
    assert [m["ts"] for m in first["messages"] + second["messages"]] == [root, *replies]
    assert first["has_more"] is True and second["has_more"] is False
    assert second["response_metadata"]["next_cursor"] == ""
    replies_of = web.conversations_replies
    assert error_code(lambda: replies_of(channel="C0PAY", ts="1.000001")) == "thread_not_found"
    via_reply = replies_of(channel="C0PAY", ts=replies[3], limit=50)["messages"]
    assert [m["ts"] for m in via_reply] == [root, *replies]  # any message names its thread
    assert error_code(lambda: replies_of(channel="C0PAY", ts=root, cursor="x")) == "invalid_cursor"


def test_history_and_update_need_a_channel_id(fake: FakeSlack) -> None:
    web = client(fake)
    ts = web.chat_postMessage(channel="#payments-alerts", text=TEXT)["ts"]
    name = "#payments-alerts"
    assert error_code(lambda: web.conversations_history(channel=name)) == "channel_not_found"
    assert error_code(lambda: web.chat_update(channel=name, ts=ts, text="x")) == "channel_not_found"


def test_update_rewrites_and_keeps_the_edit(fake: FakeSlack) -> None:
    web = client(fake)
    ts = web.chat_postMessage(channel="C0PAY", text="before")["ts"]
    answer = web.chat_update(channel="C0PAY", ts=ts, text="after", blocks=[section("after")])
    assert (answer["ts"], answer["text"]) == (ts, "after")
    (message,) = fake.messages("C0PAY")
    assert message.text == "after"
    assert message.edits == [{"text": "before", "blocks": None}]


def test_update_of_a_missing_ts_is_message_not_found(fake: FakeSlack) -> None:
    web = client(fake)
    web.chat_postMessage(channel="C0PAY", text=TEXT)
    call = lambda: web.chat_update(channel="C0PAY", ts="1.000001", text="x")  # noqa: E731
    assert slack_error(call) == (200, "message_not_found")


# -- encodings ---------------------------------------------------------------------------


def test_json_and_form_encoded_bodies_are_both_accepted(fake: FakeSlack) -> None:
    web = client(fake)
    blocks = [section("*hi*")]
    meta = {"event_type": "responder_action", "event_payload": {"run_id": "r1"}}
    web.chat_postMessage(channel="C0PAY", text="json", blocks=blocks, metadata=meta)
    form = {"channel": "C0PAY", "text": "form", "blocks": json.dumps(blocks)}
    web.api_call("chat.postMessage", params={**form, "metadata": json.dumps(meta)})
    sent_json, sent_form = fake.messages("C0PAY")
    assert (sent_json.text, sent_form.text) == ("json", "form")
    assert sent_json.blocks == sent_form.blocks == blocks
    assert sent_json.metadata == sent_form.metadata == meta


def test_unreadable_bodies_are_rejected(fake: FakeSlack) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    as_json = {**auth, "Content-Type": "application/json"}
    assert raw_post(fake, "chat.postMessage", b"{nope", as_json)["error"] == "invalid_json"
    assert raw_post(fake, "chat.postMessage", b"[1]", as_json)["error"] == "json_not_object"
    bad_blocks = urllib.parse.urlencode({"channel": "C0PAY", "text": TEXT, "blocks": "[{"}).encode()
    headers = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    assert raw_post(fake, "chat.postMessage", bad_blocks, headers)["error"] == (
        "invalid_blocks_format"
    )


# -- fault injection -----------------------------------------------------------------------


def test_fail_next_answers_429_with_retry_after_then_recovers(fake: FakeSlack) -> None:
    web = client(fake)
    fake.fail_next("chat.postMessage", count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            web.chat_postMessage(channel="C0PAY", text=TEXT)
        assert info.value.response.status_code == 429
        assert info.value.response["error"] == "ratelimited"
        assert info.value.response.headers["Retry-After"] == "3"
    assert web.chat_postMessage(channel="C0PAY", text=TEXT)["ok"] is True
    assert len(fake.messages("C0PAY")) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_fail_next_server_errors(fake: FakeSlack, status: int) -> None:
    fake.fail_next("auth.test", status=status, error="internal_error", retry_after=None)
    assert slack_error(client(fake).auth_test) == (status, "internal_error")


def test_channel_rate_limit_allows_one_post_per_second(fake: FakeSlack) -> None:
    web = client(fake)
    fake.rate_limit_channels(True)
    web.chat_postMessage(channel="C0PAY", text="first")
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="C0PAY", text="second")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.headers["Retry-After"] == "1"
    web.chat_postMessage(channel="C0OPS", text="other channel is fine")
    time.sleep(1.05)
    web.chat_postMessage(channel="C0PAY", text="third")
    assert [m.text for m in fake.messages("C0PAY")] == ["first", "third"]


def test_delay_makes_the_client_time_out_after_the_post_is_stored(fake: FakeSlack) -> None:
    fake.delay_next("chat.postMessage", 1.0)
    with pytest.raises(TimeoutError):
        client(fake, timeout=0.3).chat_postMessage(channel="C0PAY", text=TEXT)
    assert len(fake.messages("C0PAY")) == 1  # posted; only the answer was lost


def test_down_refuses_connections_until_up(fake: FakeSlack) -> None:
    web = client(fake)
    fake.down()
    with pytest.raises(urllib.error.URLError) as info:
        web.auth_test()
    assert isinstance(info.value.reason, ConnectionRefusedError)
    fake.up()
    assert web.auth_test()["ok"] is True
