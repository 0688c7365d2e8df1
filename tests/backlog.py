"""What the service still has to do, read from its database: events not yet taken through
the pipeline and runs not yet final. Zero means it has settled: what the vendors hold can
be checked."""

from __future__ import annotations

import sqlalchemy as sa

LEFT = (
    "SELECT (SELECT count(*) FROM alert_event WHERE state = 'received')"
    " + (SELECT count(*) FROM action_run WHERE state IN ('pending', 'running'))"
)


def settled(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(LEFT)).scalar_one()) == 0
