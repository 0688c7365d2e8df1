"""The `responder` command line (typer): serve, worker, stats and the command groups.

One module per command group; this package only puts them together.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from responder.cli import audit, datadog, incidents, playbooks, service, silences, stats
from responder.cli.startup import choose_log_format

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0])


class LogFormat(enum.StrEnum):
    JSON = "json"
    TEXT = "text"


def _version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"responder {version('responder')}")
        raise typer.Exit


@app.callback()
def _root(
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="json (default) or text; overrides RESPONDER_LOG_FORMAT.",
            show_default=False,
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    choose_log_format(log_format.value if log_format else None)


app.command()(service.serve)
app.command()(service.worker)
app.command()(stats.stats)
app.add_typer(service.db_app, name="db")
app.add_typer(playbooks.app, name="playbooks")
app.add_typer(incidents.app, name="incidents")
app.add_typer(audit.app, name="audit")
app.add_typer(silences.app, name="silences")
app.add_typer(datadog.app, name="datadog")
