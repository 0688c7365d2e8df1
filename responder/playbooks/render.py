"""Rendering of step params: Jinja2 templates in a sandbox, with every `{{ }}` output escaped
for the destination's markup, because alert text is untrusted input."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What templates see; the loader refuses templates that name anything else.
TEMPLATE_VARIABLES = ("alert", "incident")
_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>~])")


class RenderError(Exception):
    """A template failed to parse or render; the message names the param."""


def escape_slack(text: str) -> str:
    """Slack's own rule: only & < > are special, and escaping `<` defuses `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_markdown(text: str) -> str:
    """Backslash the characters that start emphasis, code, links or inline HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def escape_plain(text: str) -> str:
    return text


_ESCAPES: dict[str, Callable[[str], str]] = {
    "slack": escape_slack,
    "markdown": escape_markdown,
    "plain": escape_plain,
}


def escape_for(markup: str) -> Callable[[str], str]:
    try:
        return _ESCAPES[markup]
    except KeyError:
        raise ValueError(f"unknown markup {markup!r} (known: {', '.join(_ESCAPES)})") from None


class _Environment(ImmutableSandboxedEnvironment):
    """Immutable sandbox: templates may read the context but never call mutating methods."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja prefers attributes over keys, so a tag named `items` or `values` would render
        # a dict method. Context data is all mappings: look keys up first.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # The sandbox normally returns an Undefined that raises only when used, and our
        # lenient Undefined would print it as "": fail loudly instead.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _finalizer(escape: Callable[[str], str]) -> Callable[[Any], str]:
    # `finalize` sees only `{{ }}` results, never the template's literal text, which is
    # exactly the split between untrusted data and the trusted playbook author.
    def finalize(value: Any) -> str:
        if value is None or isinstance(value, Undefined):
            return ""
        # str() also turns Markup (from `|safe`, `|tojson`) into plain text: Markup's own
        # methods would escape our replacement strings, and `|safe` must not skip escaping.
        return escape(str(value))

    return finalize


@functools.cache
def _environment(markup: str) -> _Environment:
    # ChainableUndefined, not StrictUndefined: alerts differ in which tags they carry, and a
    # missing `alert.tags.region` must render as "" rather than fail the step at 3 a.m.
    # Typos in top-level names are caught at load time by `check_template` instead.
    return _Environment(
        undefined=ChainableUndefined,
        finalize=_finalizer(escape_for(markup)),
        autoescape=False,
        keep_trailing_newline=True,
    )


@functools.lru_cache(maxsize=1024)
def _template(markup: str, source: str) -> Template:
    return _environment(markup).from_string(source)


def _is_template(text: str) -> bool:
    return any(marker in text for marker in _TEMPLATE_MARKERS)


def check_template(source: str) -> None:
    """Raise RenderError if `source` does not parse or names a variable templates never see."""
    if not _is_template(source):
        return
    env = _environment("plain")
    try:
        tree = env.parse(source)
        # Jinja looks filters and tests up when it compiles, and inside `if` only when it
        # renders: check every one now, so a typo fails the load and not the page.
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            is_filter = isinstance(node, nodes.Filter)
            kind = "filter" if is_filter else "test"
            if node.name not in (env.filters if is_filter else env.tests):
                raise RenderError(
                    f"template uses unknown {kind} {node.name!r} (template line {node.lineno})"
                )
        used = meta.find_undeclared_variables(tree)  # compiles: TemplateAssertionError too
    except TemplateSyntaxError as exc:
        raise RenderError(
            f"template does not parse: {exc.message} (template line {exc.lineno})"
        ) from None
    unknown = sorted(used - set(TEMPLATE_VARIABLES) - set(env.globals))
    if unknown:
        known = ", ".join(TEMPLATE_VARIABLES)
        raise RenderError(f"template uses unknown variable {unknown[0]!r} (known: {known})")


def render_params(
    params: Mapping[str, Any], context: Mapping[str, Any], markup: str
) -> dict[str, Any]:
    """Render every string in `params` (recursively); other values are returned unchanged."""
    escape_for(markup)  # an unknown markup is a programming error: fail before rendering
    return {key: _render(value, context, markup, key) for key, value in params.items()}


def _render(value: Any, context: Mapping[str, Any], markup: str, path: str) -> Any:
    if isinstance(value, str):
        return _render_text(value, context, markup, path)
    if isinstance(value, Mapping):
        return {k: _render(v, context, markup, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, context, markup, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _render_text(text: str, context: Mapping[str, Any], markup: str, path: str) -> str:
    if not _is_template(text):
        return text
    try:
        return _template(markup, text).render(context)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{path}: template does not parse: {exc.message}") from exc
    # Filters and operators can raise any Python error (ZeroDivisionError, TypeError, ...);
    # callers need one exception type to record a failed step.
    except Exception as exc:
        raise RenderError(f"{path}: {type(exc).__name__}: {exc}") from exc
