"""`responder silences`: silence matching alerts for a while, list and expire silences."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer

from responder.cli.startup import fail, opened, read_settings
from responder.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Silence alerts for a while.")


def _silence_desk(engine: Any, settings: Settings) -> Any:
    from responder.main import build_redactor
    from responder.pipeline.silencer import SilenceDesk

    return SilenceDesk(engine, build_redactor(settings))


def _silence_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'ID':>5}  {'STATE':<8} {'ENDS (UTC)':<16}  {'MATCHERS':<40} REASON (AUTHOR)"]
    for item in items:
        parts = [f"{k}={'|'.join(v)}" for k, v in item["matchers"].get("tags", {}).items()]
        parts += [
            f"{key}={'|'.join(item['matchers'][key])}"
            for key in ("monitor_id", "monitor", "scope")
            if key in item["matchers"]
        ]
        ends = item["expired_at"] if item["state"] == "expired" else item["ends_at"]
        lines.append(
            f"{item['id']:>5}  {item['state']:<8} {ends:%Y-%m-%d %H:%M}  "
            f"{' '.join(parts):<40} {item['reason']} ({item['author']})"
        )
    return lines


@app.command("add")
def silences_add(
    reason: Annotated[str, typer.Option(help="Why: shown in the audit log and the list.")],
    author: Annotated[str, typer.Option(help="Who silences.")],
    tag: Annotated[
        list[str] | None, typer.Option(help="NAME=GLOB, e.g. service=pay* (repeatable).")
    ] = None,
    monitor_id: Annotated[list[str] | None, typer.Option(help="A monitor id (repeatable).")] = None,
    monitor: Annotated[
        list[str] | None, typer.Option(help="A monitor name glob (repeatable).")
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(help="An exact scope (repeatable).")] = None,
    duration: Annotated[str | None, typer.Option(help="How long: 30m, 2h, 1d.")] = None,
    until: Annotated[str | None, typer.Option(help="Or the end, ISO 8601 with a zone.")] = None,
    starts: Annotated[str | None, typer.Option(help="The start, ISO 8601 (default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The new silence as JSON.")] = False,
) -> None:
    """Silence matching alerts: stored and audited, no playbook runs until it ends."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from responder.pipeline.silencer import SilenceRequest, read

    tags: dict[str, list[str]] = {}
    for item in tag or []:
        name, sep, glob = item.partition("=")
        if not sep or not name or not glob:
            raise fail(f"--tag {item!r}: write NAME=GLOB, e.g. service=payments")
        tags.setdefault(name, []).append(glob)
    matchers: dict[str, Any] = {"tags": tags, "monitor_id": monitor_id, "monitor": monitor}
    matchers["scope"] = scope
    wanted: dict[str, Any] = {
        "matchers": {key: value for key, value in matchers.items() if value},
        "reason": reason,
        "author": author,
        "duration": duration,
        "ends_at": until,
        "starts_at": starts,
    }
    settings = read_settings()
    try:
        request = SilenceRequest.model_validate_json(orjson.dumps(wanted))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "silence"
        raise fail(f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
    now = datetime.now(UTC)
    with opened(settings) as engine:
        try:
            silence = _silence_desk(engine, settings).add(request, now=now)
        except ValueError as exc:
            raise fail(str(exc)) from None
    shown = read(silence, now)
    if as_json:
        sys.stdout.write(orjson.dumps(shown).decode() + "\n")
    else:
        typer.echo(f"silence {silence.id} {shown['state']} until {silence.ends_at.isoformat()}")


@app.command("list")
def silences_list(
    show_all: Annotated[bool, typer.Option("--all", help="Ended and expired ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Silences not over yet (running or to come), newest first."""
    from datetime import UTC, datetime

    from responder.pipeline.silencer import reads

    settings = read_settings()
    now = datetime.now(UTC)
    with opened(settings) as engine:
        items = reads(_silence_desk(engine, settings).listing(everything=show_all, now=now), now)
    if as_json:
        for item in items:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
        return
    if not items:
        typer.echo("no silences" if show_all else "no active silences")
        return
    typer.echo("\n".join(_silence_lines(items)))


@app.command("expire")
def silences_expire(
    silence_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Silence id.")],
    author: Annotated[str, typer.Option(help="Who expires it.")] = "cli",
) -> None:
    """End a silence now: incidents it held that still fire run their playbooks."""
    from responder.pipeline.silencer import UnknownSilence

    settings = read_settings()
    with opened(settings) as engine:
        try:
            silence = _silence_desk(engine, settings).expire(silence_id, by=author)
        except UnknownSilence:
            raise fail(f"no silence {silence_id}") from None
    typer.echo(f"silence {silence.id} ended at {silence.ended_at.isoformat()}")
