"""`responder playbooks`: check the playbooks and try them on deliveries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from responder.cli.simulated import outcome_lines
from responder.cli.startup import fail, playbooks_or_fail, read_settings

if TYPE_CHECKING:  # imported where used, so that `responder --help` stays quick
    from responder.pipeline.simulate import Delivery

app = typer.Typer(no_args_is_help=True, help="Check and try playbooks.")


@app.command("validate")
def playbooks_validate() -> None:
    """Load every playbook strictly; list problems with file and line."""
    from responder.playbooks.loader import PlaybookError
    from responder.playbooks.maintenance import load_maintenance

    settings = read_settings()
    loaded = playbooks_or_fail(settings)
    try:
        windows = load_maintenance(settings.playbooks)
    except PlaybookError as exc:
        raise fail("\n".join(exc.errors)) from None
    for playbook in loaded:
        typer.echo(f"ok  {playbook.source}:{playbook.line}  {playbook.name}")
    for window in windows:
        typer.echo(f"ok  {window.source}:{window.line}  maintenance window {window.name}")
    typer.echo(f"{len(loaded)} playbooks valid in {settings.playbooks}")


@app.command("test")
def playbooks_test(
    payloads: Annotated[
        list[Path],
        typer.Argument(
            help="Deliveries, in order: JSON files; a .jsonl file (or - for stdin) holds "
            "one delivery a line."
        ),
    ],
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Also say why the other playbooks did not match."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per delivery (JSON Lines).")
    ] = False,
) -> None:
    """Show, delivery by delivery, what the service would do with these webhooks.

    The real pipeline runs on a throwaway database: no database of yours is opened and no
    vendor is called, whatever credentials are set.
    """
    from datetime import timedelta

    from responder.main import build_redactor, build_registry, build_stages, stream_policy
    from responder.pipeline.simulate import DeliveryError, simulate

    settings = read_settings()
    registry = build_registry(settings)
    loaded = playbooks_or_fail(settings, registry)
    deliveries = _deliveries(payloads)
    # No claimer: a run taken over would be a run started.
    stages = build_stages(registry, timedelta(seconds=settings.run_max_age_seconds))
    try:
        redactor = build_redactor(settings, loaded)
        outcomes = simulate(deliveries, stages, loaded, redactor, stream_policy(settings))
    except DeliveryError as exc:
        raise fail(str(exc)) from None
    for outcome in outcomes:
        if as_json:
            sys.stdout.write(orjson.dumps(outcome.as_json(), default=str).decode() + "\n")
        else:
            typer.echo("\n".join(outcome_lines(outcome, verbose=verbose)))


def _deliveries(paths: list[Path]) -> list[Delivery]:
    """Every delivery of every input, in order; exits naming each input that cannot be read."""
    from responder.pipeline.simulate import Delivery

    found: list[Delivery] = []
    errors: list[str] = []
    for path in paths:
        try:
            if str(path) == "-":
                read = _lines("<stdin>", sys.stdin.buffer.read())
            elif path.suffix == ".jsonl":
                read = _lines(str(path), path.read_bytes())
            else:
                read = [Delivery(str(path), path.read_bytes())]
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        if not read:  # surely not what was meant: say so rather than show nothing for it
            errors.append(f"{path}: no deliveries in it (JSON Lines: one delivery a line)")
        found += read
    if errors:
        raise fail("\n".join(errors))
    return found


def _lines(source: str, data: bytes) -> list[Delivery]:
    from responder.pipeline.simulate import Delivery

    return [
        Delivery(f"{source}:{number}", line)
        for number, line in enumerate(data.splitlines(), start=1)
        if line.strip()  # blank lines separate nothing in JSON Lines; skip them
    ]


@app.command("schema")
def playbooks_schema() -> None:
    """Print a JSON Schema of playbook files, each action with its params, for editors
    (e.g. `# yaml-language-server: $schema=playbook.schema.json` atop a playbook)."""
    from responder.main import build_registry
    from responder.playbooks.jsonschema import playbook_json_schema

    registry = build_registry(read_settings())
    schema = playbook_json_schema(registry.params_models())
    sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
