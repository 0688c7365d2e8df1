"""`responder audit`: the audit log's hash chain."""

from __future__ import annotations

import typer

from responder.cli.startup import fail, opened, read_settings

app = typer.Typer(no_args_is_help=True, help="The audit log.")


@app.command("verify")
def audit_verify() -> None:
    """Prove the audit log's hash chain intact, or name the first broken row."""
    from responder.store import audit

    settings = read_settings()
    with opened(settings) as engine, engine.connect() as conn:
        report = audit.verify(conn)
    if report.ok:
        typer.echo(f"audit log intact: {report.checked} entries verified")
        return
    raise fail(
        f"audit log BROKEN at seq {report.first_broken_seq}: {report.reason} "
        f"({report.checked} entries checked)"
    )
