"""The silences API: list (`GET /api/silences`), create (`POST /api/silences`) and expire
(`POST /api/silences/{silence_id}/expire`), behind the history API's bearer token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from starlette.requests import Request

from responder.pipeline.silencer import (
    TEXT_MAX,
    SilenceDesk,
    SilenceRequest,
    UnknownSilence,
    read,
    reads,
)
from responder.web.api import BadQuery, Reply, Unprocessable, _int

_Model = TypeVar("_Model", bound=BaseModel)


class ExpireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    author: StrictStr = "api"


class SilenceApi:
    def __init__(self, desk: SilenceDesk) -> None:
        self._desk = desk

    def listing(self, request: Request) -> dict[str, Any]:
        everything = _flag(request.query_params.get("all"), "all")
        now = datetime.now(UTC)
        return {"items": reads(self._desk.listing(everything=everything, now=now), now)}

    def create(self, request: Request) -> Reply:
        wanted = _parsed(SilenceRequest, request.state.body)
        now = datetime.now(UTC)
        try:
            silence = self._desk.add(wanted, now=now)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        return Reply(read(silence, now), 201)

    def expire(self, request: Request) -> dict[str, Any] | None:
        silence_id = _int(request.path_params["silence_id"], "silence_id")
        assert silence_id is not None
        body = request.state.body
        wanted = _parsed(ExpireRequest, body) if body.strip() else ExpireRequest()
        author = wanted.author
        if not author.strip() or "\x00" in author or len(author) > TEXT_MAX:
            raise Unprocessable(f"author: 1 to {TEXT_MAX} characters, no NUL")
        author = author.strip()
        now = datetime.now(UTC)
        try:
            silence = self._desk.expire(silence_id, by=author, now=now)
        except UnknownSilence:
            return None
        return read(silence, now)


def _parsed(model: type[_Model], body: bytes) -> _Model:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadQuery("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadQuery("the body must be a JSON object")
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise Unprocessable(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw == "":
        return False
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise BadQuery(f"{name} must be 1 or 0")
