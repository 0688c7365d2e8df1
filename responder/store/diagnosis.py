"""Why a database cannot be opened, in one line that says what to do: a database that does
not exist, a server that cannot be reached, credentials it refuses."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def masked_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a database URL)"


def explain(exc: BaseException, url: str) -> str | None:
    """One line for a failure to connect; None when it is not one of those."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    parsed = make_url(url)
    message = str(getattr(exc, "orig", None) or exc)
    if parsed.get_backend_name() == "sqlite":
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        return (
            f"cannot open the SQLite database {parsed.database}: {first} "
            "(check that its folder exists and is writable, or set DATABASE_URL)"
        )
    if parsed.get_backend_name() != "postgresql":
        return None
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    shown = masked_url(url)
    if found := re.search(r'database "([^"]+)" does not exist', message):
        name = found.group(1)
        return (
            f"database {name!r} does not exist on the PostgreSQL server at {server}: "
            f"create it (createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432} "
            f"{name}), or name another in DATABASE_URL ({shown})"
        )
    if found := re.search(r'role "([^"]+)" does not exist', message):
        return (
            f"the PostgreSQL server at {server} has no user {found.group(1)!r}: "
            f"fix the user in DATABASE_URL ({shown})"
        )
    if "password authentication failed" in message or "no password supplied" in message:
        return (
            f"the PostgreSQL server at {server} refused the credentials of user "
            f"{parsed.username!r}: fix the user and password in DATABASE_URL ({shown})"
        )
    if "failed to resolve host" in message or "could not translate host name" in message:
        return f"cannot resolve the database host {parsed.host!r}: fix DATABASE_URL ({shown})"
    if "Connection refused" in message or "timeout" in message.lower():
        return (
            f"cannot reach PostgreSQL at {server}: start it, or point DATABASE_URL ({shown}) "
            "at a running server"
        )
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return f"cannot open the database {shown}: {first}"
