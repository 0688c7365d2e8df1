"""PostgreSQL goes away for 30 seconds under about a thousand webhooks a second.

The machine's PostgreSQL is shared, so the outage is a TCP proxy in front of it that drops
every connection and refuses new ones (tests.proxy). The service's processes (web and
worker, as the Procfile runs them) reach the database only through it. While it is down a
webhook is answered 503 (Datadog delivers again), never 500 and never left hanging; every
webhook answered 202 is in the database afterwards; the service takes webhooks again by
itself once the database is back; and once the refused ones are delivered again, every
alert's incident and actions are as the playbook asks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from responder.store.db import create_engine
from tests.backlog import settled
from tests.databases import restore
from tests.fraud_alerts import event_id, problems, recovered, renotified, triggered
from tests.load import Background, Sent, send
from tests.processes import processes, service_env, wait_until
from tests.proxy import TcpProxy
from tests.vendors import vendors

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RATE = 1000.0  # webhooks a second, asked of the sender
CONNECTIONS = 32
BEFORE, DOWN, AFTER = 3.0, 30.0, 5.0  # seconds of load around and during the outage
# Each of these alerts fires, then every other delivery is a reminder of one of them,
# which the playbook tells at most once an hour: load that asks for no further action.
MONITORS = 20
# Distinct deliveries, sent in turn again and again, as Datadog sends a refused webhook
# again: every one is refused while the database is down, and afterwards the first copy
# to arrive is stored (202) and the others are recognised (200). Fewer distinct events
# than webhooks keeps the backlog the worker works through after the outage to seconds;
# more than the load sends after it leaves some refused ones to deliver again at the end.
DISTINCT = 8000


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    return restore(request, "postgres")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    made = create_engine(postgres_url)  # straight to the server, not through the proxy
    yield made
    made.dispose()


def scalar(engine: sa.Engine, query: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(query)).scalar_one())


def stored(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT source_id FROM alert_event")).scalars())


def test_thirty_seconds_without_postgres_under_load_loses_nothing_acknowledged(
    postgres_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    server = make_url(postgres_url)
    distinct = [triggered(k) for k in range(MONITORS)]
    distinct += [renotified(k % MONITORS, k) for k in range(MONITORS, DISTINCT)]
    # More than the load can send: it is stopped AFTER seconds after the outage.
    bodies = [distinct[k % DISTINCT] for k in range(int(RATE * (BEFORE + DOWN + AFTER) * 2))]
    with vendors() as fakes, TcpProxy(server.host or "127.0.0.1", server.port or 5432) as proxy:
        through_proxy = server.set(host="127.0.0.1", port=proxy.port)
        env = service_env(through_proxy.render_as_string(hide_password=False), fakes)
        with processes(env, tmp_path / "logs") as procs:
            web = procs.web()
            worker = procs.worker()
            load = Background(procs.url, bodies, RATE, CONNECTIONS).start()
            time.sleep(BEFORE)
            proxy.down()
            time.sleep(DOWN)
            processed = "SELECT count(*) FROM alert_event WHERE state <> 'received'"
            before = scalar(engine, processed)
            proxy.up()
            up_at = time.monotonic()
            # The worker notices within seconds, not after resting another half minute.
            wait_until(lambda: scalar(engine, processed) > before, 10, "the worker to resume")
            time.sleep(max(0.0, AFTER - (time.monotonic() - up_at)))
            sent = load.stop()
            bodies = bodies[: len(sent.answers)]
            figures = f"{len(bodies)} webhooks in {sent.seconds:.1f} s: {sent.rate:.0f}/s"
            print(figures, sent.kinds())
            # Never 500, never a hang past the client's timeout: 202 stored, 200 stored
            # before, 503 refused.
            assert set(sent.kinds()) <= {200, 202, 503}, (figures, sent.kinds())
            assert sent.count(503) >= RATE * DOWN * 0.5, ("the outage refused little", figures)
            assert web.poll() is None and worker.poll() is None, procs.log_tail()
            answered = list(zip(map(event_id, bodies), sent.answers, strict=True))
            acked = Counter(event for event, answer in answered if answer == 202)
            assert set(acked.values()) == {1}, "an event was stored twice"
            stored_now = stored(engine)
            assert {event for event, answer in answered if answer in (200, 202)} <= stored_now
            # Taking webhooks again by itself: the last second of the load was all taken.
            assert set(sent.answers[-int(RATE) :]) <= {200, 202}

            refused = [body for body in distinct if event_id(body) not in stored_now]
            assert refused, "every refused delivery was taken by the load itself"
            again: Sent = send(procs.url, refused, RATE, CONNECTIONS)
            assert again.kinds() == {202: len(refused)}, again.kinds()
            assert {event_id(body) for body in distinct} == stored(engine)
            started = time.monotonic()
            wait_until(lambda: settled(engine), 90, "the backlog to be processed")
            print(f"backlog processed {time.monotonic() - started:.1f} s after redelivery")
            assert problems(fakes, range(MONITORS), recovered=False) == []

            sent = send(procs.url, [recovered(n) for n in range(MONITORS)], rate=50)
            assert sent.kinds() == {202: MONITORS}
            wait_until(lambda: settled(engine), 60, "the recoveries")
            assert problems(fakes, range(MONITORS), recovered=True) == []
            assert scalar(engine, "SELECT count(*) FROM action_run WHERE state <> 'succeeded'") == 0
            procs.audit_verified()
