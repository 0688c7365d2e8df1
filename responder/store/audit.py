"""The audit log: append-only rows, each carrying the hash of the one before, and its verifier."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from responder.redact import Redactor
from responder.store import db
from responder.store.tables import AuditEntry, utcnow

GENESIS_HASH = "0" * 64

# Every chain writer on PostgreSQL takes this transaction-scoped advisory lock, so that two
# processes never read the same chain head. Arbitrary but fixed: "respaudt".
AUDIT_LOCK_KEY = 0x7265_7370_6175_6474

_AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AuditRecord:
    kind: str
    data: Mapping[str, Any]
    event_id: int | None = None
    incident_id: int | None = None
    run_id: int | None = None
    at: datetime | None = None


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A record with its canonical (redacted) data: all the chain needs besides its head."""

    kind: str
    data: str
    at: datetime
    event_id: int | None
    incident_id: int | None
    run_id: int | None


def prepare(records: Sequence[AuditRecord], redactor: Redactor) -> list[PreparedRecord]:
    """Redact and serialise records: the costly part, done before taking any lock."""
    out: list[PreparedRecord] = []
    for record in records:
        at = record.at or utcnow()
        if at.tzinfo is None:
            # astimezone() would read it as local time and hash a wrong instant.
            raise ValueError(f"audit record {record.kind!r} has a naive datetime")
        out.append(
            PreparedRecord(
                record.kind,
                canonical_data(record.data, redactor),
                at.astimezone(UTC),
                record.event_id,
                record.incident_id,
                record.run_id,
            )
        )
    return out


def append(conn: sa.Connection, records: Sequence[AuditRecord], redactor: Redactor) -> None:
    """Chain `records` onto the log inside the caller's open transaction."""
    append_prepared(conn, prepare(records, redactor))


def append_prepared(conn: sa.Connection, records: Sequence[PreparedRecord]) -> None:
    """Chain prepared records onto the log inside the caller's open transaction.

    The chain is serialised until the caller commits (an advisory lock on PostgreSQL, the
    BEGIN IMMEDIATE write lock on SQLite), so append late in a transaction and commit soon.
    The transaction must run at READ COMMITTED (the default) on PostgreSQL, so the head read
    after the lock is the newest one.
    """
    if not records:
        return
    if db.is_postgres(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    head = conn.execute(
        sa.select(_AUDIT.c.seq, _AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
    rows: list[tuple[Any, ...]] = []
    for record in records:
        seq += 1
        digest = entry_hash(
            prev_hash,
            seq,
            record.at,
            record.kind,
            event_id=record.event_id,
            incident_id=record.incident_id,
            run_id=record.run_id,
            data=record.data,
        )
        at = db.driver_value(conn, record.at)
        ids = (record.event_id, record.incident_id, record.run_id)
        rows.append((seq, at, record.kind, *ids, record.data, prev_hash, digest))
        prev_hash = digest
    # Straight to the driver: a busy batch appends hundreds of rows while holding the lock.
    mark = db.placeholder(conn)
    conn.exec_driver_sql(
        "INSERT INTO audit_entry (seq, at, kind, event_id, incident_id, run_id, data, "
        f"prev_hash, hash) VALUES ({','.join([mark] * 9)})",
        rows,
    )


def append_once(
    conn: sa.Connection, record: AuditRecord, redactor: Redactor, *, reference: str
) -> bool:
    """Chain `record` (whose data carries `reference`) unless a row of its kind about the
    same incident already carries it: a redelivered webhook is recorded once. False then."""
    if db.is_postgres(conn):
        # Taken before the look, so two deliveries of the same event cannot both miss it.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    query = sa.select(_AUDIT.c.data).where(
        _AUDIT.c.kind == record.kind, _AUDIT.c.incident_id == record.incident_id
    )
    for (data,) in conn.execute(query):
        if orjson.loads(data).get("reference") == reference:
            return False
    append(conn, [record], redactor)
    return True


def canonical_data(data: Mapping[str, Any], redactor: Redactor) -> str:
    """The redacted record data as canonical JSON: the exact text that is stored and hashed.

    Sorted keys, no spaces, UTF-8; objects JSON cannot hold go in as text. Known secret
    values are replaced in the finished text; the structure is walked for secret-looking
    keys only when the text could contain one, which keeps the common record cheap.
    """
    text = _dumps(data)
    if redactor.may_hold_secret_keys(text):
        text = _dumps(redactor.redact(dict(data)))
    return redactor.redact_text(text)


def _dumps(data: Any) -> str:
    return orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS).decode()


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    kind: str,
    *,
    event_id: int | None,
    incident_id: int | None,
    run_id: int | None,
    data: str,
) -> str:
    """sha256 over every column of the row, as a JSON array so no field can bleed into another."""
    # Microseconds always: both databases keep them, and a fixed form hashes the same after
    # a round trip through either.
    at_iso = at.astimezone(UTC).isoformat(timespec="microseconds")
    canonical = orjson.dumps([prev_hash, seq, at_iso, kind, event_id, incident_id, run_id, data])
    return hashlib.sha256(canonical).hexdigest()


_HASHED = ("prev_hash", "seq", "at", "kind", "event_id", "incident_id", "run_id", "data")


def verify(conn: sa.Connection, batch: int = 5000) -> VerifyReport:
    """Walk the whole chain in seq order, in batches, and report the first row that breaks it.

    Edits show as a hash mismatch, deleted or reordered rows as a seq gap or a prev_hash
    mismatch. Removing rows from the end leaves a valid shorter chain; only a copy of the
    head kept elsewhere can catch that.
    """
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    query = sa.select(*(_AUDIT.c[name] for name in _HASHED), _AUDIT.c.hash).order_by(_AUDIT.c.seq)
    while True:
        # Keyset pagination: each batch is a short query, however long the log grows. The
        # first batch has no lower bound, so a stray row with seq < 1 is seen too.
        page = query if checked == 0 else query.where(_AUDIT.c.seq >= expected_seq)
        rows = conn.execute(page.limit(batch)).all()
        if not rows:
            return VerifyReport(ok=True, checked=checked, first_broken_seq=None, reason=None)
        for row in rows:
            values = row._mapping
            reason = _check_row(values, expected_seq, prev_hash)
            if reason is not None:
                # A gap is reported at the missing seq, anything else at the row itself.
                broken = min(values["seq"], expected_seq)
                return VerifyReport(
                    ok=False, checked=checked, first_broken_seq=broken, reason=reason
                )
            checked += 1
            expected_seq += 1
            prev_hash = values["hash"]


def _check_row(values: sa.RowMapping, expected_seq: int, prev_hash: str) -> str | None:
    seq = values["seq"]
    if seq > expected_seq:
        return f"seq {expected_seq} is missing (next row has seq {seq})"
    if seq != expected_seq:
        return f"unexpected seq {seq} where {expected_seq} should be"
    if values["prev_hash"] != prev_hash:
        return f"seq {seq} does not follow the row before it (prev_hash mismatch)"
    if entry_hash(**{name: values[name] for name in _HASHED}) != values["hash"]:
        return f"seq {seq} was altered (hash mismatch)"
    return None
