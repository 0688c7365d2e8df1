"""The `responder` command line (typer): serve, worker, stats, db, playbooks, incidents, audit.

One module per command group; this package only puts them together.
"""

from __future__ import annotations

import typer

from responder.cli import audit, incidents, playbooks, service, stats

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0])
app.command()(service.serve)
app.command()(service.worker)
app.command()(stats.stats)
app.add_typer(service.db_app, name="db")
app.add_typer(playbooks.app, name="playbooks")
app.add_typer(incidents.app, name="incidents")
app.add_typer(audit.app, name="audit")
