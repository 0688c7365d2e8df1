"""Group commit for incoming events: many requests' rows in one transaction, each acked after it.

One commit per request tops out near a thousand a second; an fsync shared by every request
that arrived meanwhile keeps the ack durable at several thousand. A single writer thread owns
the connection; a request waits on a future that resolves only after its row is committed
and on disk.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from responder.domain import Alert, alert_to_json
from responder.store.db import make_durable, sqlite_time, transaction
from responder.store.tables import AlertEvent

_EVENTS = AlertEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: int
    duplicate: bool
    incident_id: int | None = None
    outcome: dict[str, Any] | None = None
    state: str = "received"


class IntakeFull(Exception):
    """More events are waiting than the writer should hold; the caller answers 503."""


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    future: asyncio.Future[Stored]
    loop: asyncio.AbstractEventLoop


class IntakeWriter:
    def __init__(
        self,
        engine: sa.Engine,
        on_stored: Callable[[int], None] = lambda count: None,
        on_batch: Callable[[int], None] = lambda size: None,
        max_batch: int = 500,
        max_waiting: int = 20_000,
    ) -> None:
        self._engine = engine
        self._on_stored = on_stored
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_waiting)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, row: dict[str, Any], timeout: float = 10.0) -> Stored:
        """Wait until `row` is committed; TimeoutError past `timeout` (it may still commit)."""
        loop = asyncio.get_running_loop()
        pending = _Pending(row, loop.create_future(), loop)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise IntakeFull("intake queue is full") from None
        # A bare timer is much cheaper than asyncio.timeout() on this path.
        timer = loop.call_later(timeout, _expire, pending.future)
        try:
            return await pending.future
        finally:
            timer.cancel()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Pending]) -> None:
        try:
            results = store(self._engine, [p.row for p in batch])
        except Exception as exc:  # every waiting request must hear about it, whatever it is
            _resolve(batch, [exc] * len(batch))
            return
        self._on_batch(len(batch))
        _resolve(batch, results)
        fresh = sum(1 for r in results if isinstance(r, Stored) and not r.duplicate)
        if fresh:
            self._on_stored(fresh)


def event_row(
    alert: Alert,
    body: bytes,
    payload: str,
    received_at: datetime,
    *,
    part: int,
    keep_alert: bool = True,
) -> dict[str, Any]:
    """The alert_event row for one delivery, as `store` takes it.

    The fingerprint is what recognises a redelivery: Datadog's notification id when the
    template sends one, else the exact body. `part` is its sequencer partition (the one
    sequencer of SQLite takes every partition). Without `keep_alert` the row holds the
    payload alone and the worker normalises it again (`pipeline.alerts.stored_alert`):
    right only for an alert that is `normalise(payload, received_at)`, as a Datadog
    delivery's is, and not for the events responder makes itself (their `cause`)."""
    fingerprint = (
        f"dd:{alert.source_id}"[:80]
        if alert.source_id
        else f"sha256:{hashlib.sha256(body).hexdigest()}"
    )
    return {
        "fingerprint": fingerprint,
        "source_id": alert.source_id[:64] if alert.source_id else None,
        "monitor_id": alert.monitor_id[:64] if alert.monitor_id else None,
        "title": alert.title,
        "transition": alert.transition.value,
        "priority": alert.priority,
        "scope": alert.scope,
        "cycle_key": alert.cycle_key[:128] if alert.cycle_key else None,
        "template": alert.template,
        "payload": payload,
        "alert": alert_to_json(alert).decode() if keep_alert else None,
        "received_at": received_at,
        "state": "received",
        "deliveries": 1,
        "attempts": 0,
        "part": part,
    }


def store(engine: sa.Engine, rows: list[dict[str, Any]]) -> list[Stored | BaseException]:
    """Insert event rows in one durable transaction; each result says new or a redelivery."""
    # The same delivery twice in one batch: insert it once, answer the second as a redelivery.
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["fingerprint"], row)
    with transaction(engine, urgent=True) as conn:
        # The driver's own cursor: SQLAlchemy's execution context costs more per statement
        # than the statement itself here, on the GIL the event loop is waiting for.
        cursor = conn.connection.cursor()
        try:
            if conn.dialect.name == "sqlite":
                inserted = _insert_sqlite(cursor, unique)
            else:
                inserted = _insert_postgres(cursor, unique)
        finally:
            cursor.close()
        known = [fp for fp in {r["fingerprint"] for r in rows} if fp not in inserted]
        existing = _redeliveries(conn, known) if known else {}
    make_durable(engine)  # on disk before anyone hears 202, outside the write lock
    results: list[Stored | BaseException] = []
    first_seen: set[str] = set()
    for row in rows:
        fp = row["fingerprint"]
        if fp in inserted and fp not in first_seen:
            first_seen.add(fp)
            results.append(Stored(event_id=inserted[fp], duplicate=False))
        elif fp in existing:
            results.append(existing[fp])
        elif fp in inserted:
            results.append(Stored(event_id=inserted[fp], duplicate=True))
        else:
            results.append(RuntimeError(f"event {fp} neither inserted nor found"))
    return results


COLUMNS = (
    "fingerprint",
    "source_id",
    "monitor_id",
    "title",
    "transition",
    "priority",
    "scope",
    "cycle_key",
    "template",
    "payload",
    "alert",
    "received_at",
    "state",
    "deliveries",
    "attempts",
    "part",
)


_ROW_VALUES = operator.itemgetter(*COLUMNS)
_RECEIVED_AT = COLUMNS.index("received_at")


def _sqlite_values(rows: Iterable[dict[str, Any]]) -> list[Any]:
    """The rows' values in COLUMNS order, one flat list for one multi-row INSERT."""
    values: list[Any] = []
    for row in rows:
        values.extend(_ROW_VALUES(row))
    # As SQLAlchemy's SQLite DateTime stores a datetime (naive UTC text); the only column
    # here whose value the driver cannot take as it is.
    at = slice(_RECEIVED_AT, None, len(COLUMNS))
    values[at] = [sqlite_time(v) for v in values[at]]
    return values


@functools.lru_cache(maxsize=128)
def _insert_sql(rows: int, mark: str) -> str:
    """One multi-row INSERT in the driver's own dialect: the intake's hot path skips the ORM
    and SQLAlchemy's statement compiler, leaving the event loop more of the GIL."""
    group = "(" + ",".join([mark] * len(COLUMNS)) + ")"
    return f"INSERT INTO alert_event ({','.join(COLUMNS)}) VALUES {','.join([group] * rows)}"


# The PostgreSQL type of each column's array, for `unnest`.
_PG_ARRAYS = {
    "received_at": "timestamptz[]",
    "deliveries": "int[]",
    "attempts": "int[]",
    "part": "int[]",
}
_UNNEST = ",".join("%b::" + _PG_ARRAYS.get(column, "text[]") for column in COLUMNS)
_INSERT_POSTGRES = (
    f"INSERT INTO alert_event ({','.join(COLUMNS)}) SELECT * FROM unnest({_UNNEST}) "
    "ON CONFLICT (fingerprint) DO NOTHING RETURNING id, fingerprint"
)


def _insert_postgres(cursor: Any, unique: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Insert the deliveries not stored yet; their ids, by fingerprint.

    One statement whatever the batch: each column's values as one array, unnested on the
    server. A statement per row (even pipelined) cost the client ~25 us of CPU a row and
    took the GIL back once per row's result, each time waiting behind the in-process
    worker; a multi-row VALUES list has a new text, and a placeholder parse, per size."""
    rows = [_ROW_VALUES(row) for row in unique.values()]
    cursor.execute(_INSERT_POSTGRES, [list(column) for column in zip(*rows, strict=True)])
    # No row back for a delivery stored already (a redelivery).
    return {fingerprint: event_id for event_id, fingerprint in cursor.fetchall()}


def _insert_sqlite(cursor: Any, unique: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Insert the deliveries not stored yet; their ids, by fingerprint.

    sqlite3 gives up and takes back the GIL for every row a statement yields, and each take
    waits behind the worker thread; RETURNING would cost one wait per row. Instead: one
    look for redeliveries (almost always no row), one INSERT, and the ids from the last
    rowid, since rows of one INSERT get consecutive ids under the write lock we hold.
    """
    fingerprints = list(unique)
    marks = ",".join("?" * len(fingerprints))
    cursor.execute(
        f"SELECT fingerprint FROM alert_event WHERE fingerprint IN ({marks})", fingerprints
    )
    seen = {fp for (fp,) in cursor.fetchall()}
    fresh = [fp for fp in fingerprints if fp not in seen]
    if not fresh:
        return {}
    values = _sqlite_values(unique[fp] for fp in fresh)
    cursor.execute(_insert_sql(len(fresh), "?"), values)
    last: int = cursor.lastrowid
    return {fp: last - len(fresh) + 1 + i for i, fp in enumerate(fresh)}


def _redeliveries(conn: sa.Connection, fingerprints: list[str]) -> dict[str, Stored]:
    """Count the extra delivery and read what the first one led to, for the 200 answer."""
    conn.execute(
        sa.update(_EVENTS)
        .where(_EVENTS.c.fingerprint.in_(fingerprints))
        .values(deliveries=_EVENTS.c.deliveries + 1)
    )
    rows = conn.execute(
        sa.select(
            _EVENTS.c.fingerprint,
            _EVENTS.c.id,
            _EVENTS.c.incident_id,
            _EVENTS.c.outcome,
            _EVENTS.c.state,
        ).where(_EVENTS.c.fingerprint.in_(fingerprints))
    )
    return {
        fp: Stored(event_id=eid, duplicate=True, incident_id=iid, outcome=outcome, state=state)
        for fp, eid, iid, outcome, state in rows
    }


def _resolve(batch: list[_Pending], results: Sequence[Stored | BaseException]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Any]]] = {}
    for pending, result in zip(batch, results, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending.future, result))
    for loop, items in by_loop.items():
        # One hop into each event loop per batch instead of one per request.
        loop.call_soon_threadsafe(_settle, items)


def _expire(future: asyncio.Future[Stored]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("the database did not commit in time"))


def _settle(items: list[tuple[asyncio.Future[Stored], Any]]) -> None:
    for future, result in items:
        if future.done():
            continue  # the request gave up waiting (timeout); its row is stored all the same
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
