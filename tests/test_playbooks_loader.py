"""Loading playbooks: the happy path, and that every kind of mistake names file, line and cause."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from responder.actions import StepParams
from responder.domain import Transition
from responder.playbooks import PlaybookError, load_playbooks


class SlackPostParams(StepParams):
    """Stand-in for integrations.slack's `slack.post` params (same fields, no Slack import)."""

    channel: str
    text: str | None = None
    mention: str | None = None


MODELS: dict[str, type[StepParams]] = {"slack.post": SlackPostParams}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors_of(folder: Path) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(folder, MODELS)
    assert str(caught.value).count("\n") == len(caught.value.errors)
    return caught.value.errors


def test_loads_a_full_playbook(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pay.yaml",
        """
        name: payments-critical
        description: Page payments on-call
        match:
          tags: {service: payments, env: [prod, "prod-*"], region: "*"}
          priority: [p1, P2]
          transition: [triggered, Re-Triggered]
          monitor: "*failure rate*"
          when: 'alert.tags.region != "eu-west-3"'
        final: true
        actions:
          - slack.post: {channel: "#payments-alerts"}
          - slack.post:
              channel: "#payments-alerts"
              text: "still failing: {{ alert.title }}"
              after: 1h30m
              if: incident.open
        """,
    )
    [playbook] = load_playbooks(tmp_path, MODELS)
    assert playbook.name == "payments-critical"
    assert playbook.description == "Page payments on-call"
    assert playbook.final is True
    assert playbook.fallback is False
    assert playbook.source == path
    assert playbook.line == 1
    assert len(playbook.content_hash) == 64
    match = playbook.match
    assert match.tags == {"service": ("payments",), "env": ("prod", "prod-*"), "region": ("*",)}
    assert match.priority == ("P1", "P2")
    assert match.transition == (Transition.TRIGGERED, Transition.RE_TRIGGERED)
    assert match.monitor == ("*failure rate*",)
    assert match.program is not None
    first, second = playbook.actions
    assert (first.index, first.action, first.line) == (0, "slack.post", 11)
    assert first.params == {"channel": "#payments-alerts"}
    assert first.after is None
    assert first.condition is None
    assert (second.index, second.line) == (1, 12)
    assert second.params == {
        "channel": "#payments-alerts",
        "text": "still failing: {{ alert.title }}",
    }
    assert second.after == timedelta(hours=1, minutes=30)
    assert second.condition == "incident.open"


def test_order_is_file_name_then_document_and_yml_counts(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "name: b\nactions: []\n")
    write(
        tmp_path,
        "a.yaml",
        """
        name: a1
        actions: []
        ---
        # a comment before the second playbook
        name: a2
        actions: []
        ---
        """,
    )
    write(tmp_path, "notes.txt", "not: a playbook")
    write(tmp_path, ".a.yaml.swp.yaml", "garbage: [")
    playbooks = load_playbooks(tmp_path, MODELS)
    assert [p.name for p in playbooks] == ["a1", "a2", "b"]
    assert playbooks[1].line == 5


def test_null_params_mean_no_params(tmp_path: Path) -> None:
    class NoParams(StepParams):
        pass

    write(tmp_path, "a.yaml", "name: a\nactions:\n  - test.ping:\n  - test.ping: {after: 5m}\n")
    [playbook] = load_playbooks(tmp_path, {"test.ping": NoParams})
    assert [step.params for step in playbook.actions] == [{}, {}]
    assert playbook.actions[1].after == timedelta(minutes=5)


def test_empty_or_missing_match_defaults_to_everything(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nactions: []\n---\nname: b\nmatch:\nactions: []\n")
    for playbook in load_playbooks(tmp_path, MODELS):
        assert playbook.match.tags == {}
        assert playbook.match.transition is None
        assert playbook.match.program is None


def test_empty_folder_is_fine_and_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert load_playbooks(tmp_path, MODELS) == []
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(tmp_path / "nope", MODELS)
    assert caught.value.errors == [f"{tmp_path / 'nope'}: playbook folder not found"]


def test_content_hash_ignores_comments_but_not_changes(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nactions: [{slack.post: {channel: '#a'}}]\n")
    before = load_playbooks(tmp_path, MODELS)[0].content_hash
    write(tmp_path, "a.yaml", "# hello\nname: a\nactions:\n  - slack.post: {channel: '#a'}\n")
    assert load_playbooks(tmp_path, MODELS)[0].content_hash == before
    write(tmp_path, "a.yaml", "name: a\nactions: [{slack.post: {channel: '#b'}}]\n")
    assert load_playbooks(tmp_path, MODELS)[0].content_hash != before


def test_unknown_key_names_file_line_and_allowed_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pay.yaml",
        """
        name: pay
        match:
          tags: {service: payments}
          prioroty: [P1]
        actions: []
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:4: unknown key 'prioroty' in match"
        " (allowed: tags, priority, transition, monitor, when)"
    ]


def test_unknown_top_level_key_and_missing_name(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "nmae: x\nactions: []\n")
    errors = errors_of(tmp_path)
    assert f"{path}:1: missing required key 'name' in playbook" in errors
    assert any(
        e.startswith(f"{path}:1: unknown key 'nmae' in playbook (allowed: name,") for e in errors
    )


def test_wrong_types_are_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        match:
          tags: {security: true}
        final: sometimes
        actions: {slack.post: {channel: "#a"}}
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:3: match.tags: tag 'security' must be text; quote it: 'true'",
        f"{path}:4: final: Input should be a valid boolean, got str 'sometimes'",
        f"{path}:5: actions: write a list of steps (or [] for none)",
    ]


def test_unknown_action_lists_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nactions:\n  - slack.pots: {channel: '#a'}\n")
    assert errors_of(tmp_path) == [f"{path}:3: unknown action 'slack.pots' (known: slack.post)"]


def test_params_are_validated_by_the_action_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        actions:
          - slack.post:
              chanel: "#a"
          - slack.post: {channel: 5}
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:3: missing required key 'channel' in slack.post params",
        f"{path}:4: unknown key 'chanel' in slack.post params (allowed: channel, text, mention)",
        f"{path}:5: slack.post param 'channel': Input should be a valid string, got int 5",
    ]


def test_misindented_params_are_explained(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        actions:
          - slack.post:
            channel: "#a"
          - slack.post
        """,
    )
    errors = errors_of(tmp_path)
    assert errors[0].startswith(f"{path}:3: a step holds exactly one action, found keys")
    assert "indented under the action name" in errors[0]
    assert errors[1].startswith(f"{path}:5: a step must be a mapping with one action")


def test_bad_cel_does_not_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        match:
          when: 'alert.priority == '
        actions: []
        ---
        name: b
        match:
          when: 'alrt.priority == "P1"'
        actions: []
        ---
        name: c
        match:
          when: 'alert.tag_list.exists(t, t.startsWith("team:"))'
        actions: []
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:3: match.when: CEL expression does not compile at column 16: 'alert.priority =='",
        f"{path}:8: match.when: unknown name 'alrt' (expressions see: alert, incident)",
    ]


def test_bad_templates_do_not_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        actions:
          - slack.post:
              channel: "#a"
              text: "{{ alert.title "
          - slack.post: {channel: "#a", text: "{{ alrt.title }}"}
        """,
    )
    errors = errors_of(tmp_path)
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:5: slack.post param 'text': template does not parse")
    assert errors[1] == (
        f"{path}:6: slack.post param 'text': template uses unknown variable 'alrt'"
        " (known: alert, incident)"
    )


def test_bad_match_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        match:
          tags: {service: ""}
          priority: P9
          transition: Triggerd
          monitor: "[abc"
        actions: []
        """,
    )
    errors = errors_of(tmp_path)
    assert (
        errors[0] == f"{path}:3: match.tags: tag 'service': empty pattern (use '*' for any value)"
    )
    assert errors[1] == f"{path}:4: match.priority: 'P9' is not one of P1, P2, P3, P4, P5"
    assert errors[2].startswith(f"{path}:5: match.transition: unknown transition 'Triggerd'")
    assert errors[3].startswith(f"{path}:6: match.monitor: unclosed '['")


def test_bad_after_and_unsupported_if(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        actions:
          - slack.post:
              channel: "#a"
              after: 10 minutes
              if: incident.closed
          - slack.post: {channel: "#a", after: 0s}
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:5: bad duration '10 minutes' for after (use e.g. 30s, 10m, 2h, 1h30m)",
        f"{path}:6: unsupported if 'incident.closed'"
        " (supported: incident.open, incident.unacknowledged)",
        f"{path}:7: after must be longer than zero, got '0s'",
    ]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nmatch:\n  monitor: *oops*\nactions: []\n")
    [error] = errors_of(tmp_path)
    assert error.startswith(f"{path}:3: YAML syntax error:")


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nactions: []\nname: b\n")
    assert errors_of(tmp_path) == [f"{path}:3: duplicate key 'name' (first at line 1)"]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "name: same\nactions: []\n")
    second = write(tmp_path, "b.yaml", "# again\nname: same\nactions: []\n")
    assert errors_of(tmp_path) == [
        f"{second}:2: duplicate playbook name 'same' (first defined at {first}:1)"
    ]


def test_all_errors_of_all_files_are_reported_at_once(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "name: a\nfinal: 1\nactions: []\n")
    b = write(tmp_path, "b.yaml", "- not a mapping\n")
    write(tmp_path, "c.yaml", "name: fine\nactions: []\n")
    errors = errors_of(tmp_path)
    assert [e.split(":")[0] for e in errors] == [str(a), str(b)]
    assert (
        errors[1] == f"{b}:1: a playbook must be a mapping with name, match and actions, got a list"
    )


def test_names_must_be_simple(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: pay ments\nactions: []\n")
    [error] = errors_of(tmp_path)
    assert error.startswith(f"{path}:1: name: 'pay ments' may hold only letters")


def test_stream_keys_flapping_stale_after_and_grouping(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        name: shop
        stale_after: 2h
        flapping: {changes: 5, window: 30m, quiet: 10m}
        group_by: [service, env]
        group_window: 90s
        actions: []
        ---
        name: quiet
        stale_after: off
        flapping: false
        group_by: service
        actions: []
        """,
    )
    shop, quiet = load_playbooks(tmp_path, MODELS)
    assert shop.stale_after == timedelta(hours=2) and not shop.stale_off
    assert shop.flapping is not None
    assert (shop.flapping.enabled, shop.flapping.changes) == (True, 5)
    assert (shop.flapping.window, shop.flapping.quiet) == (
        timedelta(minutes=30),
        timedelta(minutes=10),
    )
    assert (shop.group_by, shop.group_window) == (("service", "env"), timedelta(seconds=90))
    assert quiet.stale_after is None and quiet.stale_off
    assert quiet.flapping is not None and not quiet.flapping.enabled
    assert quiet.group_by == ("service",)


def test_stream_keys_name_their_mistakes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        stale_after: soon
        flapping: {changes: 0, window: 1 hour}
        group_by: ["service:checkout"]
        actions: []
        """,
    )
    errors = "\n".join(errors_of(tmp_path))
    assert "bad duration 'soon' for stale_after" in errors
    assert "bad duration '1 hour' for window" in errors
    assert "changes" in errors and "greater than or equal to 1" in errors
    assert "group_by key 'service:checkout' must be a plain tag name" in errors
    assert str(path) in errors


def test_aliases_that_expand_past_reason_are_refused_not_walked(tmp_path: Path) -> None:
    # Found while fuzzing the loader: eight short lines stand for 10**8 values, and
    # every walk of the document visited each one (about eight minutes per level past six).
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 8)
    ]
    path = write(
        tmp_path,
        "bomb.yaml",
        "\n".join(
            ["name: bomb", "actions:", "  - slack.post:", "      channel: '#a'", "      blocks:"]
            + [f"        {line}" for line in levels]
        )
        + "\n",
    )
    assert errors_of(tmp_path) == [
        f"{path}:1: document too large: more than 100000 values once YAML aliases are expanded"
    ]


def test_durations_too_long_for_a_date_name_their_key(tmp_path: Path) -> None:
    # Found by tests/test_fuzz_playbooks.py (HYPOTHESIS_PROFILE=deep): an OverflowError
    # escaped the loader.
    path = write(
        tmp_path,
        "a.yaml",
        """
        name: a
        stale_after: 99999999999d
        group_window: 3651d
        actions:
          - slack.post: {channel: "#a", after: 99999999999999999999h}
        """,
    )
    assert errors_of(tmp_path) == [
        f"{path}:2: stale_after: stale_after must be at most 3650d (ten years), got '99999999999d'",
        f"{path}:3: group_window: group_window must be at most 3650d (ten years), got '3651d'",
        f"{path}:5: after must be at most 3650d (ten years), got '99999999999999999999h'",
    ]


def test_a_control_character_is_a_yaml_error_at_its_line(tmp_path: Path) -> None:
    # Found by tests/test_fuzz_playbooks.py: PyYAML's ReaderError escaped the loader.
    path = write(tmp_path, "a.yaml", "name: a\n# a comment with \x1f in it\nactions: []\n")
    assert errors_of(tmp_path) == [f"{path}:2: YAML syntax error: character #x001f is not allowed"]
