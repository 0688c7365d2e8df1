"""Rendering step params: untrusted alert text is escaped for its destination and never run."""

from __future__ import annotations

from typing import Any

import pytest

from responder.playbooks import RenderError, escape_for, render_params
from responder.playbooks.render import check_template


def context(title: str = "High Payment Failure Rate", **tags: str) -> dict[str, Any]:
    return {
        "alert": {
            "title": title,
            "priority": None,
            "tags": {"service": "payment", **tags},
            "tag_list": ["service:payment"],
        },
        "incident": {"id": "inc-1", "status": "triggered"},
    }


def test_alert_text_is_escaped_for_slack_but_author_text_is_not() -> None:
    params = {"text": "<!here> *{{ alert.title }}* & co", "mention": "<!here>"}
    out = render_params(params, context(title="<!channel> A & B > C"), "slack")
    assert out == {
        "text": "<!here> *&lt;!channel&gt; A &amp; B &gt; C* & co",
        "mention": "<!here>",
    }


def test_jinja_syntax_in_alert_text_is_never_evaluated() -> None:
    out = render_params(
        {"text": "{{ alert.title }}"}, context(title="{{ 7*7 }} {% if 1 %}x{% endif %}"), "slack"
    )
    assert out["text"] == "{{ 7*7 }} {% if 1 %}x{% endif %}"
    assert "49" not in out["text"]


def test_markdown_escaping_is_minimal() -> None:
    out = render_params(
        {"body": "**{{ alert.title }}** 50%"},
        context(title="[x](http://e) *b* `c` _d_"),
        "markdown",
    )
    assert out["body"] == r"**\[x\](http://e) \*b\* \`c\` \_d\_** 50%"


def test_safe_filter_does_not_skip_escaping() -> None:
    template = "{{ alert.title | safe }}|{{ alert.title | string }}"
    out = render_params({"t": template}, context(title="<!channel> & x"), "slack")
    assert out["t"] == "&lt;!channel&gt; &amp; x|&lt;!channel&gt; &amp; x"


def test_plain_leaves_text_alone() -> None:
    out = render_params({"t": "{{ alert.title }}"}, context(title="<!channel> & *x*"), "plain")
    assert out["t"] == "<!channel> & *x*"


def test_escape_for_is_reusable_and_strict() -> None:
    assert escape_for("slack")("<@U1> & <!here>") == "&lt;@U1&gt; &amp; &lt;!here&gt;"
    assert escape_for("plain")("<x>") == "<x>"
    with pytest.raises(ValueError, match="unknown markup 'html'"):
        escape_for("html")
    with pytest.raises(ValueError, match="unknown markup"):
        render_params({"t": "x"}, context(), "html")


def test_missing_values_render_empty() -> None:
    out = render_params(
        {"t": "[{{ alert.tags.region }}|{{ alert.tags.region.name }}|{{ alert.priority }}]"},
        context(),
        "slack",
    )
    assert out["t"] == "[||]"


def test_nested_values_are_rendered_and_other_types_kept() -> None:
    params = {
        "inputs": {"service": "{{ alert.tags.service }}", "replicas": 6, "on": True},
        "lines": ["a {{ incident.id }}", None, 1.5],
        "plain": "no template here {",
    }
    assert render_params(params, context(), "plain") == {
        "inputs": {"service": "payment", "replicas": 6, "on": True},
        "lines": ["a inc-1", None, 1.5],
        "plain": "no template here {",
    }


def test_single_expression_stays_a_string() -> None:
    out = render_params({"n": "{{ alert.tags.replicas }}"}, context(replicas="6"), "plain")
    assert out == {"n": "6"}


def test_tag_named_like_a_dict_method_renders_its_value() -> None:
    out = render_params(
        {"t": "{{ alert.tags.items }}/{{ alert.tags.keys }}"}, context(items="3", keys="k"), "plain"
    )
    assert out["t"] == "3/k"


def test_filters_work() -> None:
    out = render_params({"t": "{{ alert.tag_list | join(', ') | upper }}"}, context(), "plain")
    assert out["t"] == "SERVICE:PAYMENT"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ alert.__class__ }}",
        "{{ alert.tags.update({'service': 'x'}) }}",
        "{{ alert.tag_list.append('x') }}",
    ],
)
def test_sandbox_blocks_unsafe_access(template: str) -> None:
    ctx = context()
    with pytest.raises(RenderError) as caught:
        render_params({"t": template}, ctx, "slack")
    assert str(caught.value).startswith("t: SecurityError")
    assert ctx["alert"]["tags"] == {"service": "payment"}
    assert ctx["alert"]["tag_list"] == ["service:payment"]


def test_template_errors_are_wrapped() -> None:
    with pytest.raises(RenderError, match=r"^inputs\.n: template does not parse"):
        render_params({"inputs": {"n": "{{ alert.title "}}, context(), "plain")
    with pytest.raises(RenderError, match=r"^t: ZeroDivisionError"):
        render_params({"t": "{{ 1 // 0 }}"}, context(), "plain")
    with pytest.raises(RenderError, match=r"^l\[1\]: "):
        render_params({"l": ["ok", "{{ alert.title() }}"]}, context(), "plain")


def test_check_template() -> None:
    check_template(
        "{{ alert.title }} {% for t in alert.tag_list %}{{ t }}{% endfor %} {{ range(2) }}"
    )
    check_template("no template")
    with pytest.raises(RenderError, match="does not parse"):
        check_template("{% if %}")
    with pytest.raises(RenderError, match="unknown variable 'alrt'"):
        check_template("{{ alrt.title }}")


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{{ alert.tag_list | oin(',') }}", "filter 'oin'"),
        ("{% if alert.title %}{{ alert.title | uper }}{% endif %}", "filter 'uper'"),
        ("{% if alert.priority is nmber %}x{% endif %}", "test 'nmber'"),
    ],
)
def test_an_unknown_filter_or_test_is_a_render_error(template: str, named: str) -> None:
    # Found by tests/test_fuzz_playbooks.py: jinja2's TemplateAssertionError escaped the
    # loader, and inside `if` a typo passed the load to fail only when rendered.
    with pytest.raises(RenderError, match=f"template uses unknown {named}"):
        check_template(template)
