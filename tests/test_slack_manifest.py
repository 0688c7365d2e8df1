"""integrations/slack/manifest.yaml asks for exactly the scopes the code needs and points
Slack at the paths the app serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from responder.web.commands import HELP
from responder.web.openapi import document

SLACK = Path(__file__).resolve().parents[1] / "integrations" / "slack"
# Slack's reference pages, "Required scopes", for each Web API method (the SDK's method
# names): a bot token in public and private channels, no DMs.
SCOPES = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_list": {"channels:read", "groups:read"},
    "auth_test": set(),
}
_CALL = re.compile(r"self\._client\.([a-z]+_[A-Za-z]+)")


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SLACK / "manifest.yaml").read_text())
    return loaded


def called_methods() -> set[str]:
    return {name for path in SLACK.glob("*.py") for name in _CALL.findall(path.read_text())}


def test_every_called_method_has_known_scopes() -> None:
    called = called_methods()
    assert "chat_postMessage" in called  # the pattern finds the calls
    assert called - set(SCOPES) == set(), (
        "a new Slack method: add its scopes here and to the manifest"
    )


def test_the_bot_scopes_are_exactly_what_the_code_calls() -> None:
    needed = set().union(*(SCOPES[name] for name in called_methods()))
    needed.add("commands")  # the /responder slash command
    scopes = manifest()["oauth_config"]["scopes"]
    assert set(scopes["bot"]) == needed
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert "user" not in scopes  # responder acts as its bot only


def test_slack_is_sent_to_the_paths_the_app_serves() -> None:
    data = manifest()
    served = document()["paths"]
    (command,) = data["features"]["slash_commands"]
    assert command["command"] == "/responder"
    assert command["url"] == "https://YOUR-HOST/slack/commands"
    interactivity = data["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"] == "https://YOUR-HOST/slack/interactions"
    for url in (command["url"], interactivity["request_url"]):
        assert "post" in served[url.removeprefix("https://YOUR-HOST")]
    # The usage hint names the commands the help text explains.
    for word in command["usage_hint"].split(" | "):
        assert f"`{word}`" in HELP or f"`{word} " in HELP, word
