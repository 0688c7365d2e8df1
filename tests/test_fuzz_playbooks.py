"""Property tests of the playbook loader: mutated example playbooks and mangled YAML text.

Whatever the folder holds, loading gives a valid set of playbooks or a PlaybookError whose
every line is "FILE:LINE: problem"; when one field was changed, the problem names that
field. Never another exception, and never a walk that does not end.
"""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from responder.actions import StepParams
from responder.main import build_registry
from responder.playbooks import Playbook, PlaybookError, load_playbooks
from responder.playbooks.schema import compile_when
from responder.settings import Settings
from tests.fuzzing import JSON, TEXT, budget

REPO = Path(__file__).resolve().parents[1]
MODELS: dict[str, type[StepParams]] = build_registry(Settings()).params_models()
EXAMPLES = {
    path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for path in sorted((REPO / "playbooks").glob("*.yaml"))
}
TEXTS = {path.name: path.read_text() for path in sorted((REPO / "playbooks").glob("*.yaml"))}
Loc = tuple[str | int, ...]
KNOWN_KEYS: list[Loc] = [
    *((key,) for key in ("name", "description", "final", "fallback", "stale_after")),
    *((key,) for key in ("flapping", "group_by", "group_window", "match", "actions")),
    *(("flapping", key) for key in ("enabled", "changes", "window", "quiet")),
    *(("match", key) for key in ("tags", "priority", "transition", "monitor", "when")),
]
# Loading is file I/O, YAML and CEL: allow for a busy machine, but not for a walk without end.
PATIENCE = timedelta(seconds=5)
# celpy raises the recursion limit when its first environment is made; hypothesis warns when
# that happens during an example, so make it happen now.
compile_when("alert.title != ''")


def load(files: dict[str, str]) -> tuple[Path, list[Playbook] | PlaybookError]:
    """Load a folder holding `files`; the folder's path and what loading gave."""
    with tempfile.TemporaryDirectory(prefix="playbooks-") as name:
        folder = Path(name)
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
        try:
            return folder, load_playbooks(folder, MODELS)
        except PlaybookError as exc:
            return folder, exc


def assert_located(folder: Path, error: PlaybookError) -> None:
    assert error.errors
    located = re.compile(rf"{re.escape(str(folder))}/[^/:]+\.yaml:\d+: \S")
    for line in error.errors:
        assert located.match(line), line


def paths(data: Any, loc: Loc = ()) -> list[Loc]:
    """Every place in a document a value sits, nested ones included."""
    found: list[Loc] = [loc] if loc else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*loc, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*loc, index))
    return found


def replaced(data: Any, loc: Loc, value: Any) -> Any:
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    if isinstance(data, dict):
        inner = data.get(head)
        inner = inner if isinstance(inner, dict | list) or not rest else {}
        return {**data, head: replaced(inner, rest, value) if rest else value}
    copy = list(data)
    copy[int(head)] = replaced(copy[int(head)], rest, value)
    return copy


def removed(data: Any, loc: Loc) -> Any:
    head, rest = loc[0], loc[1:]
    if rest:
        if isinstance(data, dict):
            return {**data, head: removed(data[head], rest)}
        copy = list(data)
        copy[int(head)] = removed(copy[int(head)], rest)
        return copy
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if key != head}
    return [value for index, value in enumerate(data) if index != head]


def field_words(loc: Loc) -> set[str]:
    """Words of which an error about `loc` names at least one."""
    keys = [part for part in loc if isinstance(part, str)]
    words = {*keys, *(repr(key)[1:-1] for key in keys)}  # errors quote odd keys with repr
    if "actions" in loc:
        # "a step must be a mapping ...", "unknown action 'x'", "... param 'y': ..."
        words |= {"step", "action", "params"}
    return words


@st.composite
def one_change(draw: st.DrawFn) -> tuple[str, int, Loc, str, Any]:
    """A file, a document, a place in it, and what happens there (value, removal, new key)."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    index = draw(st.integers(0, len(EXAMPLES[name]) - 1))
    loc = draw(st.sampled_from(paths(EXAMPLES[name][index])))
    kind = draw(st.sampled_from(["set", "set", "remove", "add", "known"]))
    value = draw(JSON) if kind != "remove" else None
    if kind == "known":  # the keys the format defines, present in the examples or not
        steps = EXAMPLES[name][index].get("actions") or []
        step: Loc = ()
        if steps and isinstance(steps[0], dict):
            pick = draw(st.integers(0, len(steps) - 1))
            step = ("actions", pick, str(next(iter(steps[pick]))))
        known = [*KNOWN_KEYS, *((*step, key) for key in ("after", "if") if step)]
        loc, kind = draw(st.sampled_from(known)), "set"
        value = draw(st.one_of(TEXT, JSON))
    if kind == "add":
        loc = (*loc[:-1], draw(st.text(min_size=1, max_size=10)))
    return name, index, loc, kind, value


@given(change=one_change())
@budget(1, deadline=PATIENCE)
def test_one_changed_field_loads_or_is_named_with_file_and_line(
    change: tuple[str, int, Loc, str, Any],
) -> None:
    name, index, loc, kind, value = change
    docs = list(EXAMPLES[name])
    doc = docs[index]
    if kind == "remove":
        docs[index] = removed(doc, loc)
    else:
        parent = doc
        for part in loc[:-1] if kind == "add" else ():
            parent = parent[part]
        if not isinstance(parent, dict):
            return  # a new key needs a mapping to sit in
        docs[index] = replaced(doc, loc, value)
    text = yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False)
    # PyYAML writes a few keys (one holding U+0085, say) that it reads back otherwise.
    assume(list(yaml.safe_load_all(text)) == docs)
    files = {**TEXTS, name: text}
    folder, outcome = load(files)
    if isinstance(outcome, PlaybookError):
        assert_located(folder, outcome)
        changed = [line for line in outcome.errors if f"/{name}:" in line]
        assert changed, outcome.errors  # the other files did not change
        words = field_words(loc)
        assert any(word in line for line in changed for word in words), (words, changed)
    else:
        assert outcome and all(p.source.parent == folder for p in outcome)
        assert len({p.name for p in outcome}) == len(outcome)


def edits(text: str) -> st.SearchStrategy[str]:
    """A playbook file's text with a few spans cut, copied or overwritten."""
    piece = st.one_of(TEXT, st.sampled_from(list(":-[]{}&*!|>#'\"\t\n%@`?, ")))

    @st.composite
    def edited(draw: st.DrawFn) -> str:
        out = text
        for _ in range(draw(st.integers(1, 4))):
            start = draw(st.integers(0, len(out)))
            end = draw(st.integers(start, min(len(out), start + 40)))
            action = draw(st.sampled_from(["cut", "insert", "overwrite", "copy"]))
            if action == "cut":
                out = out[:start] + out[end:]
            elif action == "insert":
                out = out[:start] + draw(piece) + out[start:]
            elif action == "overwrite":
                out = out[:start] + draw(piece) + out[end:]
            else:
                out = out[:end] + out[start:end] + out[end:]
        return out

    return edited()


@given(data=st.data())
@budget(1, deadline=PATIENCE)
def test_mangled_yaml_loads_or_is_reported_by_file_and_line(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(TEXTS)))
    text = data.draw(edits(TEXTS[name]))
    folder, outcome = load({**TEXTS, name: text})
    if isinstance(outcome, PlaybookError):
        assert_located(folder, outcome)
        assert str(outcome).count("\n") == len(outcome.errors)
    else:
        assert outcome


@given(text=st.one_of(st.text(max_size=300), JSON.map(yaml.safe_dump)))
@budget(1, deadline=PATIENCE)
def test_any_text_at_all_loads_or_is_reported_by_file_and_line(text: str) -> None:
    folder, outcome = load({"any.yaml": text})
    if isinstance(outcome, PlaybookError):
        assert_located(folder, outcome)


@given(name=st.sampled_from(sorted(EXAMPLES)), flow=st.booleans(), width=st.integers(20, 200))
@budget(0.3, deadline=PATIENCE)
def test_the_content_hash_ignores_layout(name: str, flow: bool, width: int) -> None:
    _, original = load({name: TEXTS[name]})
    relaid = yaml.safe_dump_all(EXAMPLES[name], default_flow_style=flow, width=width)
    _, again = load({name: relaid})
    assert isinstance(original, list) and isinstance(again, list)
    assert [p.content_hash for p in original] == [p.content_hash for p in again]
