"""The audit chain: appends verify, tampering is found, concurrent writers keep it whole."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from responder.redact import REDACTED, Redactor
from responder.store import audit
from responder.store.audit import AuditRecord

SECRET = "xoxb-1234567890-very-secret"
NO_SECRETS = Redactor([])
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _append(engine: sa.Engine, count: int, *, start: int = 0) -> None:
    records = [
        AuditRecord(
            kind="action.started",
            data={"n": start + i, "text": "héllo", "when": T0},
            event_id=start + i,
            incident_id=7,
            run_id=None if i % 2 else i,
            at=T0 + timedelta(seconds=start + i),
        )
        for i in range(count)
    ]
    with engine.begin() as conn:
        audit.append(conn, records, NO_SECRETS)


def _verify(engine: sa.Engine, batch: int = 5000) -> audit.VerifyReport:
    with engine.connect() as conn:
        return audit.verify(conn, batch=batch)


def _exec(engine: sa.Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_empty_log_verifies(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        audit.append(conn, [], NO_SECRETS)
    assert _verify(engine) == audit.VerifyReport(True, 0, None, None)


def test_append_then_verify(engine: sa.Engine) -> None:
    _append(engine, 3)
    _append(engine, 4, start=3)
    report = _verify(engine, batch=2)  # several batches
    assert report == audit.VerifyReport(ok=True, checked=7, first_broken_seq=None, reason=None)
    with engine.connect() as conn:
        query = sa.text("SELECT seq, prev_hash, hash FROM audit_entry ORDER BY seq")
        rows = conn.execute(query).all()
    assert [r.seq for r in rows] == list(range(1, 8))
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_stored_data_is_canonical_json(engine: sa.Engine) -> None:
    _append(engine, 1)
    with engine.connect() as conn:
        data = conn.execute(sa.text("SELECT data FROM audit_entry")).scalar_one()
    assert data == '{"n":0,"text":"héllo","when":"2024-05-01T12:00:00.123456+00:00"}'


def test_naive_time_is_refused(engine: sa.Engine) -> None:
    record = AuditRecord(kind="k", data={}, at=datetime(2024, 1, 1))  # naive on purpose
    with engine.begin() as conn, pytest.raises(ValueError, match="naive"):
        audit.append(conn, [record], NO_SECRETS)


def test_edited_data_is_found(engine: sa.Engine) -> None:
    _append(engine, 5)
    _exec(engine, "UPDATE audit_entry SET data = :d WHERE seq = 3", d='{"n":99}')
    report = _verify(engine)
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 3, 2)
    assert report.reason is not None and "hash mismatch" in report.reason


def test_edited_time_is_found(engine: sa.Engine) -> None:
    _append(engine, 5)
    _exec(engine, "UPDATE audit_entry SET at = :at WHERE seq = 4", at=T0 - timedelta(days=1))
    assert _verify(engine).first_broken_seq == 4


def test_rehashed_row_breaks_the_next_link(engine: sa.Engine) -> None:
    # An editor who also recomputes the row's own hash is caught by the row after it.
    _append(engine, 5)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM audit_entry WHERE seq = 2")).one()
    forged = audit.entry_hash(
        row.prev_hash,
        2,
        T0 + timedelta(seconds=1),
        row.kind,
        event_id=row.event_id,
        incident_id=row.incident_id,
        run_id=row.run_id,
        data='{"n":42}',
    )
    sql = "UPDATE audit_entry SET data = :d, hash = :h WHERE seq = 2"
    _exec(engine, sql, d='{"n":42}', h=forged)
    report = _verify(engine)
    assert (report.first_broken_seq, report.checked) == (3, 2)
    assert report.reason is not None and "prev_hash" in report.reason


def test_deleted_row_is_found(engine: sa.Engine) -> None:
    _append(engine, 6)
    _exec(engine, "DELETE FROM audit_entry WHERE seq = 3")
    report = _verify(engine, batch=2)
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert report.reason is not None and "missing" in report.reason


def test_deleted_first_row_is_found(engine: sa.Engine) -> None:
    _append(engine, 3)
    _exec(engine, "DELETE FROM audit_entry WHERE seq = 1")
    assert _verify(engine).first_broken_seq == 1


def test_reordered_rows_are_found(engine: sa.Engine) -> None:
    _append(engine, 5)
    _exec(engine, "UPDATE audit_entry SET seq = -1 WHERE seq = 2")
    _exec(engine, "UPDATE audit_entry SET seq = 2 WHERE seq = 3")
    _exec(engine, "UPDATE audit_entry SET seq = 3 WHERE seq = -1")
    report = _verify(engine)
    assert (report.ok, report.first_broken_seq) == (False, 2)


def test_concurrent_writers_keep_the_chain(engine: sa.Engine) -> None:
    per_thread = 200
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                record = AuditRecord(kind="test.write", data={"writer": name, "i": i})
                with engine.begin() as conn:
                    audit.append(conn, [record], NO_SECRETS)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    report = _verify(engine, batch=64)
    assert report == audit.VerifyReport(True, 2 * per_thread, None, None)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, data FROM audit_entry ORDER BY seq")).all()
    assert [r.seq for r in rows] == list(range(1, 2 * per_thread + 1))
    for name in ("a", "b"):
        mine = [json.loads(r.data)["i"] for r in rows if json.loads(r.data)["writer"] == name]
        assert mine == list(range(per_thread))


def test_secrets_never_reach_the_log(engine: sa.Engine) -> None:
    redactor = Redactor([SECRET, "", "short"])
    record = AuditRecord(
        kind="slack.post",
        data={
            "url": f"https://hooks.example/{SECRET}/x",
            "headers": {"Authorization": "Bearer abc", "X-Request": "1"},
            "nested": [{"api_key": 12345}, ("keep", SECRET)],
            "Slack_Bot_Token": "anything",
            "note": "short words stay",
        },
    )
    with engine.begin() as conn:
        audit.append(conn, [record], redactor)
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT data FROM audit_entry")).scalar_one()
    assert SECRET not in text and "Bearer abc" not in text
    assert json.loads(text) == {
        "url": f"https://hooks.example/{REDACTED}/x",
        "headers": {"Authorization": REDACTED, "X-Request": "1"},
        "nested": [{"api_key": REDACTED}, ["keep", REDACTED]],
        "Slack_Bot_Token": REDACTED,
        "note": "short words stay",
    }
    assert _verify(engine).ok


class _Opaque:
    def __str__(self) -> str:
        return f"opaque {SECRET}"


def test_canonical_data_redacts_what_json_cannot_hold() -> None:
    text = audit.canonical_data({"obj": _Opaque()}, Redactor([SECRET]))
    assert text == '{"obj":"opaque [REDACTED]"}'


@pytest.mark.parametrize(
    "key", ["token", "SECRET", "db_password", "DD_API_KEY", "app-key", "routing_key", "signature"]
)
def test_secret_looking_keys(key: str) -> None:
    assert Redactor([]).redact({key: "v", "other": "v"}) == {key: REDACTED, "other": "v"}


def test_redact_copies_and_keeps_shapes() -> None:
    redactor = Redactor([SECRET, "abcdef", "abcdefgh"])
    value = {"a": [SECRET, ("abcdefgh-x",)], "n": 1, "none": None, "token": None}
    redacted = redactor.redact(value)
    assert redacted == {"a": [REDACTED, (f"{REDACTED}-x",)], "n": 1, "none": None, "token": None}
    assert value["a"] == [SECRET, ("abcdefgh-x",)]  # the input is untouched
    assert redactor.redact_text("no secrets here") == "no secrets here"
    assert Redactor(["tiny", ""]).redact_text("tiny") == "tiny"


def test_secret_keyed_values_are_redacted_in_stored_data(engine: sa.Engine) -> None:
    redactor = Redactor(["xoxb-very-secret-1"])
    records = [
        audit.AuditRecord("t", {"request": {"routing_key": "R0UTINGKEY123", "n": 1}}),
        audit.AuditRecord("t", {"error": "auth failed for xoxb-very-secret-1"}),
        audit.AuditRecord("t", {"cycle_key": "not-a-secret-777"}),
    ]
    with engine.begin() as conn:
        audit.append(conn, records, redactor)
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT data FROM audit_entry ORDER BY seq"))]
    assert "R0UTINGKEY123" not in stored[0] and "[REDACTED]" in stored[0]
    assert "xoxb-very-secret-1" not in stored[1]
    assert "not-a-secret-777" in stored[2]


def test_a_secret_reference_stays_readable_but_a_secret_does_not() -> None:
    redactor = Redactor(["0123456789abcdef0123456789abcdef"])
    data = {
        "routing_key": "env:PD_PAYMENTS_KEY",
        "default": {"routing_key": "PAGERDUTY_ROUTING_KEY"},
        "literal": {"routing_key": "SOMEUPPERCASEKEY1234"},
        "known": {"note": "sent with 0123456789abcdef0123456789abcdef"},
    }
    assert redactor.redact(data) == {
        "routing_key": "env:PD_PAYMENTS_KEY",
        "default": {"routing_key": "PAGERDUTY_ROUTING_KEY"},
        "literal": {"routing_key": REDACTED},
        "known": {"note": f"sent with {REDACTED}"},
    }
