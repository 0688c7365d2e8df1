"""Ids for new incident and action_run rows, handed out before the rows are written."""

from __future__ import annotations

import sqlalchemy as sa


class RowIds:
    """Hands out ids for new rows before they are written; only sequencers insert them.

    SQLite continues after the largest id; PostgreSQL draws from the table's own sequence
    in small blocks, so that ids stay unique whatever else inserts.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._free: dict[str, list[int]] = {"incident": [], "action_run": []}
        self._next: dict[str, int] = {}

    def take(self, table: str) -> int:
        if not self._postgres:
            if table not in self._next:
                top = self._conn.execute(sa.text(f"SELECT max(id) FROM {table}")).scalar()
                self._next[table] = (top or 0) + 1
            self._next[table] += 1
            return self._next[table] - 1
        free = self._free[table]
        if not free:
            free.extend(
                self._conn.execute(
                    sa.text(
                        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                        "FROM generate_series(1, 32)"
                    )
                ).scalars()
            )
            free.reverse()
        return free.pop()
