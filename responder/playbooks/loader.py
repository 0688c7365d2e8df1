"""Loading the playbook folder: YAML with line numbers, strict validation of every playbook and
step, and one error report naming file, line and problem for everything that is wrong."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from responder.actions import StepParams
from responder.domain import parse_duration
from responder.playbooks.render import RenderError, check_template
from responder.playbooks.schema import (
    CONTROL_KEYS,
    Playbook,
    PlaybookDocument,
    Step,
    check_condition,
)

Loc = tuple[str | int, ...]
_SUFFIXES = (".yaml", ".yml")
# Beside the playbooks, not playbooks: recurring maintenance windows (`playbooks.maintenance`).
MAINTENANCE_FILES = ("maintenance.yaml", "maintenance.yml")
_MAX_DEPTH = 64  # YAML aliases can nest data arbitrarily deep; playbooks never need this much
# ...and arbitrarily wide: ten lines of aliases can stand for billions of values, which every
# later walk (validation, templates, the content hash) would visit one by one.
_MAX_VALUES = 100_000


class PlaybookError(Exception):
    """Every problem found in the playbook folder, each as "FILE:LINE: what is wrong"."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"{count} in playbooks:\n" + "\n".join(self.errors))


@dataclass
class _Problems:
    """The problems of one file, kept with their line so the report reads top to bottom."""

    path: Path
    found: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.found.append((line, message))

    def messages(self) -> list[str]:
        ordered = sorted(self.found, key=lambda problem: problem[0])
        return [f"{self.path}:{line}: {message}" for line, message in ordered]


@dataclass
class _Document:
    """One YAML document with the line of every key and list item, to place errors."""

    problems: _Problems
    data: Any
    line: int
    lines: dict[Loc, int] = field(default_factory=dict)
    values: int = 0  # seen by _index_lines, aliases expanded

    @property
    def path(self) -> Path:
        return self.problems.path

    def line_of(self, loc: Loc) -> int:
        # An error deep inside a value is reported at the nearest key we know the line of.
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return self.line

    def error(self, loc: Loc, message: str) -> None:
        self.problems.add(self.line_of(loc), message)


def load_playbooks(folder: Path, params_models: Mapping[str, type[StepParams]]) -> list[Playbook]:
    """All playbooks of `folder` in order (file name, then document order), or PlaybookError."""
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "playbook folder not found"
        raise PlaybookError([f"{folder}: {problem}"])
    errors: list[str] = []
    playbooks: list[Playbook] = []
    seen: dict[str, Playbook] = {}
    for path in playbook_files(folder):
        problems = _Problems(path)
        for doc in _read_documents(problems):
            playbook = _build_playbook(doc, params_models)
            if playbook is None:
                continue
            if playbook.name in seen:
                first = seen[playbook.name]
                doc.error(
                    ("name",),
                    f"duplicate playbook name {playbook.name!r}"
                    f" (first defined at {first.source}:{first.line})",
                )
                continue
            seen[playbook.name] = playbook
            playbooks.append(playbook)
        errors.extend(problems.messages())
    if errors:
        raise PlaybookError(errors)
    return playbooks


def playbook_files(folder: Path) -> list[Path]:
    """The files `load_playbooks` reads, in the order it reads them."""
    # Dot files are editor backups and lock files, never playbooks.
    return sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix in _SUFFIXES
            and path.is_file()
            and not path.name.startswith(".")
            and path.name not in MAINTENANCE_FILES
        ),
        key=lambda path: path.name,
    )


def _read_documents(problems: _Problems) -> list[_Document]:
    try:
        text = problems.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(1, f"cannot read file: {exc}")
        return []
    docs: list[_Document] = []
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # YAML allows no control character, even in comments
        line = text.count("\n", 0, exc.position) + 1
        problems.add(line, f"YAML syntax error: character #x{exc.character:04x} is not allowed")
        return []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = _Document(problems, loader.construct_document(node), node.start_mark.line + 1)
            try:
                _index_lines(doc, node, ())
            except _TooLarge:
                problems.add(
                    doc.line,
                    f"document too large: more than {_MAX_VALUES} values once YAML aliases"
                    " are expanded",
                )
                continue
            if doc.data is not None:  # an empty document, e.g. after a trailing `---`
                docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable YAML"
        problems.add(mark.line + 1 if mark is not None else 1, f"YAML syntax error: {problem}")
        return []  # later documents of a broken file cannot be trusted to be read right
    except yaml.YAMLError as exc:
        problems.add(1, f"YAML syntax error: {exc}")
        return []
    finally:
        loader.dispose()
    return docs


class _TooLarge(Exception):
    pass


def _index_lines(doc: _Document, node: yaml.Node, loc: Loc) -> None:
    if len(loc) > _MAX_DEPTH:
        return
    doc.values += 1
    if doc.values > _MAX_VALUES:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                # PyYAML keeps the last value silently; a repeated key is always a mistake.
                doc.problems.add(line, f"duplicate key {key!r} (first at line {first_seen[key]})")
            first_seen.setdefault(key, line)
            doc.lines[(*loc, key)] = line
            _index_lines(doc, value_node, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[(*loc, index)] = item.start_mark.line + 1
            _index_lines(doc, item, (*loc, index))


def _build_playbook(
    doc: _Document, params_models: Mapping[str, type[StepParams]]
) -> Playbook | None:
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        doc.error((), f"a playbook must be a mapping with name, match and actions, got a {kind}")
        return None
    before = len(doc.problems.found)
    header: PlaybookDocument | None = None
    try:
        header = PlaybookDocument.model_validate(doc.data)
    except ValidationError as exc:
        _report(doc, exc, (), PlaybookDocument, None)
    # Steps are checked even when the header is broken, so one run reports everything.
    raw_steps = doc.data.get("actions")
    steps = [
        _build_step(doc, index, item, params_models)
        for index, item in enumerate(raw_steps if isinstance(raw_steps, list) else [])
    ]
    if header is None or len(doc.problems.found) > before:
        return None
    return Playbook(
        name=header.name,
        description=header.description,
        match=header.match,
        actions=[step for step in steps if step is not None],
        final=header.final,
        fallback=header.fallback,
        stale_after=header.stale_after,
        stale_off=header.stale_off,
        flapping=header.flapping,
        group_by=header.group_by,
        group_window=header.group_window,
        source=doc.path,
        line=doc.line,
        content_hash=_content_hash(doc.data),
    )


def _content_hash(data: Any) -> str:
    # Canonical JSON: reformatting or commenting a playbook leaves its hash alone, while any
    # change in meaning shows up in the audit log as a new hash.
    canonical = json.dumps(_string_keys(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _string_keys(data: Any) -> Any:
    # YAML allows `1:` next to `a:`; sorting such mixed keys would raise a TypeError.
    if isinstance(data, dict):
        return {str(key): _string_keys(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_string_keys(item) for item in data]
    return data


def _build_step(
    doc: _Document, index: int, item: Any, params_models: Mapping[str, type[StepParams]]
) -> Step | None:
    loc: Loc = ("actions", index)
    example = "like '- slack.post: {channel: \"#alerts\"}'"
    if not isinstance(item, dict) or not item:
        doc.error(loc, f"a step must be a mapping with one action, {example}")
        return None
    if len(item) > 1:
        doc.error(
            loc,
            f"a step holds exactly one action, found keys {', '.join(map(repr, item))};"
            " params go indented under the action name",
        )
        return None
    action, raw = next(iter(item.items()))
    loc = (*loc, str(action))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        doc.error(loc, f"params of {action!r} must be a mapping, got {_shown(raw)}")
        return None
    before = len(doc.problems.found)
    params = {key: value for key, value in raw.items() if key not in CONTROL_KEYS}
    after = _control(doc, loc, raw, "after", parse_duration)
    condition = _control(doc, loc, raw, "if", check_condition)
    _check_params(doc, loc, str(action), params, params_models)
    _check_templates(doc, loc, params)
    if len(doc.problems.found) > before:
        return None
    line = doc.line_of(loc[:2])
    return Step(
        index=index, action=action, params=params, after=after, condition=condition, line=line
    )


def _control(
    doc: _Document, loc: Loc, raw: dict[str, Any], key: str, parse: Callable[[Any], Any]
) -> Any:
    if key not in raw:
        return None
    try:
        return parse(raw[key])
    except ValueError as exc:
        doc.error((*loc, key), str(exc))
        return None


def _check_params(
    doc: _Document,
    loc: Loc,
    action: str,
    params: dict[str, Any],
    params_models: Mapping[str, type[StepParams]],
) -> None:
    model = params_models.get(action)
    if model is None:
        known = ", ".join(sorted(params_models)) or "none"
        doc.error(loc[:2], f"unknown action {action!r} (known: {known})")
        return
    try:
        model.model_validate(params)
    except ValidationError as exc:
        _report(doc, exc, loc, model, action)


def _check_templates(doc: _Document, loc: Loc, value: Any) -> None:
    if isinstance(value, str):
        try:
            check_template(value)
        except RenderError as exc:
            doc.error(loc, f"{loc[2]} param {_dotted(loc[3:])!r}: {exc}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_templates(doc, (*loc, str(key)), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_templates(doc, (*loc, index), item)


def _report(
    doc: _Document, exc: ValidationError, prefix: Loc, model: type[BaseModel], action: str | None
) -> None:
    """Turn pydantic's errors into "FILE:LINE: message" lines an on-call engineer can act on.

    `action` is None for the playbook itself, else the action whose params failed."""
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        doc.error((*prefix, *loc), _describe(error, loc, model, action))


def _describe(error: ErrorDetails, loc: Loc, model: type[BaseModel], action: str | None) -> str:
    kind = error["type"]
    inner = _dotted(loc[:-1])
    if action is None:
        parent = inner or "playbook"
        subject = _dotted(loc)
    else:
        parent = f"{action} params" + (f".{inner}" if inner else "")
        subject = f"{action} param {_dotted(loc)!r}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {str(loc[-1])!r} in {parent}{listed}"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r} in {parent}"
    context = error.get("ctx") or {}
    if kind == "value_error" and "error" in context:
        message = str(context["error"])  # our own validators already say what is wrong
    else:
        message = f"{error['msg']}, got {_shown(error['input'])}"
    return f"{subject}: {message}" if loc else message


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the (possibly nested) model at `loc` accepts, in declaration order."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        info = current.model_fields.get(str(part))
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return [info.alias or name for name, info in current.model_fields.items()]


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
