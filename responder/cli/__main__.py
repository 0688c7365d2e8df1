"""`python -m responder.cli`: the same command as `responder`."""

from responder.cli import app

app()
