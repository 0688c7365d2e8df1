"""What `responder serve` says before it serves: where it listens, the API token it uses
(made and kept beside a SQLite database when none is set), the database, the playbooks,
and each integration as configured or skipped with the variables to set."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from responder.settings import Settings

if TYPE_CHECKING:
    from responder.main import IntegrationState
    from responder.playbooks.schema import Playbook

TOKEN_SUFFIX = ".api-token"  # noqa: S105 (a file name, not a secret)


@dataclass(frozen=True, slots=True)
class ApiToken:
    value: str | None
    how: str  # where it came from, said in the report


def token_file(database_url: str) -> Path | None:
    """Where a generated API token is kept: beside the SQLite database file (None for a
    server database, or SQLite in memory)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    database = Path(url.database).resolve()
    return database.with_name(database.name + TOKEN_SUFFIX)


def api_token(settings: Settings) -> tuple[Settings, ApiToken]:
    """The settings with the API token to use, and where it comes from."""
    if settings.api_token is not None and settings.api_token.get_secret_value().strip():
        return settings, ApiToken(None, "from RESPONDER_API_TOKEN")
    path = token_file(settings.database_url)
    if path is None:
        return settings, ApiToken(None, "none: set RESPONDER_API_TOKEN to use the API")
    value, made = _kept_token(path)
    how = f"{'generated, kept' if made else 'kept'} in {path} (RESPONDER_API_TOKEN overrides it)"
    # Shown once, when made: stdout is often a log stream too (systemd, containers), and
    # every restart would copy it there. The file holds it after that.
    shown = ApiToken(value if made else None, how)
    return settings.model_copy(update={"api_token": SecretStr(value)}), shown


def _kept_token(path: Path) -> tuple[str, bool]:
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing, False
    value = secrets.token_urlsafe(32)
    # Written whole under a name of its own, readable by its owner only, then linked into
    # place: a link never replaces a file, so two servers starting at once keep one token,
    # and neither can read the file half-written.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    finally:
        draft.unlink(missing_ok=True)
    return value, True


def report(
    settings: Settings,
    token: ApiToken,
    playbooks: list[Playbook],
    integrations: list[IntegrationState],
    *,
    host: str,
    port: int,
    insecure: bool,
    worker: bool,
) -> list[str]:
    from responder.store.diagnosis import masked_url

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (a display)
    base = f"http://{shown_host}:{port}"
    webhook = (
        "no token needed (--insecure)"
        if insecure
        else f"{len(settings.webhook_tokens)} token(s) from RESPONDER_WEBHOOK_TOKEN, "
        "sent as X-Responder-Token"
    )
    names = ", ".join(playbook.name for playbook in playbooks) or "none"
    lines = [
        f"responder {version('responder')}",
        f"  URL         {base}/",
        f"  webhook     POST {base}/webhooks/datadog: {webhook}",
        f"  API         {base}/api/incidents, described at {base}/openapi.json",
    ]
    if token.value is not None:
        lines.append(f"  API token   {token.value}")
        lines.append(f"              {token.how}; send as Authorization: Bearer <token>")
    else:
        lines.append(f"  API token   {token.how}")
    lines += [
        f"  database    {masked_url(settings.database_url)}",
        f"  playbooks   {len(playbooks)} from {settings.playbooks}: {names}",
        f"  worker      {'in this process' if worker else 'none here (--no-worker)'}",
        "  integrations",
    ]
    width = max((len(state.name) for state in integrations), default=0)
    lines += [
        f"    {state.name.ljust(width)}  {'ok: ' if state.configured else ''}{state.detail}"
        for state in integrations
    ]
    lines.append(f"  logs        {settings.log_format} on stderr, level {settings.log_level}")
    return lines
