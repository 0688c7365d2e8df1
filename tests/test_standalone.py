"""The repository stands on its own: nothing it runs or documents reaches outside of it, and its
Datadog samples cover every transition of the example monitors in both payload templates."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from responder.domain import Transition
from responder.intake.datadog import normalise
from tests.samples import SAMPLES

REPO = Path(__file__).resolve().parents[1]


def test_each_sample_is_the_transition_its_name_says() -> None:
    names = sorted(path.name for path in SAMPLES.glob("*.json"))
    assert names
    for name in names:
        data = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
        alert = normalise(data, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
        said = name.removesuffix(".json").rsplit(".", 1)[1]
        assert alert.transition.value.lower().replace(" ", "-") == said, name


def test_the_samples_cover_every_transition_both_templates_and_four_monitors() -> None:
    alerts = [
        normalise(json.loads(path.read_text(encoding="utf-8")), datetime.now(UTC))
        for path in SAMPLES.glob("*.json")
    ]
    assert {alert.transition for alert in alerts} == set(Transition)
    assert {alert.template for alert in alerts} == {"responder", "default"}
    assert len({alert.monitor_id for alert in alerts if alert.template == "responder"}) == 4


def test_the_readme_sends_a_sample_that_exists() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sent = re.findall(r"--data @(\S+\.json)", readme)
    assert sent
    assert all((REPO / path).is_file() for path in sent)
    template = re.search(r"Paste `([^`]+)`", readme)
    assert template is not None and (REPO / template.group(1)).is_file()


# -- any path out of the repository, in any text file it tracks -----------------------------

# The folder of material beside the repository that a user's clone does not have. Spelled
# once, so that this file's own patterns and examples do not name a path to it.
FOLDER = "shared"
# That folder reached from here: up one level and into it, "FOLDER/datadog/..." (as a doc or
# a comment would name it), and in code a path piece "FOLDER" joined with `/` or after "..".
BESIDE = (
    re.compile(rf"\.\.[/\\]+{FOLDER}\b"),
    re.compile(rf"(?:^|[^\w.-]){FOLDER}/[\w.*-]"),
    re.compile(
        rf"""/\s*["']{FOLDER}["']|["']{FOLDER}["']\s*/|["']\.\.["']\s*,\s*["']{FOLDER}["']"""
    ),
)
# `Path(__file__)...parents[N]` and `.parent` chains: where they lead is checked against the
# file's depth in the repository.
PARENTS = re.compile(r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?((?:\.parent)+)\b")
# Paths into the repository that its READMEs name, in backticks or as curl's `@file`.
REPO_PATH = re.compile(
    r"(?:`|@)((?:responder|tests|bench|playbooks|integrations|migrations|\.ci)/[^`\s]*)"
)


def tracked_files() -> list[str]:
    """Every file git tracks or would add (not ignored), whatever its kind."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name})


def leaks(name: str, text: str) -> list[str]:
    """The lines of `text` (repository file `name`) that reach outside the repository."""
    found: list[str] = []
    depth = len(Path(name).parts)  # climbing `depth` levels from the file reaches the repository
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}: {line.strip()[:120]}"
        if any(pattern.search(line) for pattern in BESIDE):
            found.append(where)
            continue
        climbs = [int(n) + 1 for n in PARENTS.findall(line)]
        climbs += [chain.count(".parent") for chain in PARENT_CHAIN.findall(line)]
        if any(climb > depth for climb in climbs):
            found.append(f"{where} (climbs out of the repository)")
    return found


def test_no_text_file_reaches_a_folder_beside_the_repository() -> None:
    names = tracked_files()
    assert "playbooks/payments.yaml" in names  # YAML, JSON and the rest are read too
    found: list[str] = []
    for name in names:
        path = REPO / name
        if path == Path(__file__).resolve() or not path.is_file():
            continue  # this file spells the patterns out; a deleted file is not shipped
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        found += leaks(name, text)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("tests/conftest.py", f'return Path(__file__).resolve().parents[2] / "{FOLDER}" / "x"'),
        ("tests/contexts.py", 'SAMPLES = Path(__file__).resolve().parents[2] / "samples"'),
        ("bench/run.py", 'LOAD = Path(__file__).resolve().parent.parent.parent / "bench"'),
        ("bench/run.py", f'HERE = os.path.join(os.path.dirname(__file__), "..", "{FOLDER}")'),
        ("tests/fakes/x.py", f'SPECS = ROOT / "{FOLDER}" / "vendor-specs"'),
        ("README.md", f"  --data @../{FOLDER}/datadog/samples/payment.triggered.json"),
        ("playbooks/p.yaml", f"# Fix for good: paste {FOLDER}/datadog/webhook-template.json"),
        ("bench/README.md", f"- `..\\{FOLDER}\\bench\\load.py`: the generator"),
    ],
)
def test_the_check_catches_a_path_out_of_the_repository(name: str, line: str) -> None:
    assert leaks(name, line) != []


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("tests/conftest.py", 'return Path(__file__).resolve().parent / "samples" / "datadog"'),
        ("responder/store/migrate.py", 'DIR = Path(__file__).resolve().parents[2] / "migrations"'),
        ("bench/slack_sink.py", "REPO = Path(__file__).resolve().parents[1]"),
        ("README.md", "| `RESPONDER_WEBHOOK_TOKEN` | none | shared secret(s), comma-separated |"),
        ("responder/store/intake.py", "an fsync shared by every request in the batch"),
        ("tests/test_runner.py", "rig.store(name)  # three lanes, one shared pace"),
    ],
)
def test_the_check_lets_the_word_shared_be(name: str, line: str) -> None:
    assert leaks(name, line) == []


@pytest.mark.parametrize("readme", ["README.md", "bench/README.md"])
def test_every_path_a_readme_names_is_in_the_repository(readme: str) -> None:
    text = (REPO / readme).read_text(encoding="utf-8")
    named = {
        path.rstrip(".,:;)")
        for path in REPO_PATH.findall(text)
        # Placeholders, and what runs write (gitignored), are not files to ship.
        if not re.search(r"[<*{]", path) and not path.startswith("bench/results")
    }
    assert named, readme
    assert sorted(path for path in named if not (REPO / path).exists()) == []
