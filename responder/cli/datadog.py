"""`responder datadog`: what to paste into Datadog."""

from __future__ import annotations

import sys
from importlib import resources

import typer

app = typer.Typer(no_args_is_help=True, help="Datadog set-up.")


@app.command("template")
def template() -> None:
    """Print the webhook payload template to paste into Datadog's webhook integration."""
    text = resources.files("responder.intake").joinpath("webhook-template.json").read_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
