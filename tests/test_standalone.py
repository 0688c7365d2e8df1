"""The repository stands on its own: nothing it runs or documents reaches outside of it, and its
Datadog samples cover every transition of the example monitors in both payload templates."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from responder.domain import Transition
from responder.intake.datadog import normalise
from tests.samples import SAMPLES

REPO = Path(__file__).resolve().parents[1]
# A path to the folder of shared material beside the repository, which a clone does not have.
OUTSIDE = re.compile(r"\.\./shared|/ \"shared\"|/work/shared")
CHECKED = (".py", ".md", ".lua", ".toml", ".cfg", ".ini", ".sh", "Makefile", "Procfile", "run")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if name.endswith(CHECKED)]


def test_no_file_reaches_outside_the_repository() -> None:
    files = tracked_text_files()
    assert any(path.name == "conftest.py" for path in files)  # the listing itself works
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        if path.is_file() and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


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
