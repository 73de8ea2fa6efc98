"""A claim's cost does not grow with the backlog: it walks the pending deliveries of its
target in id order and stops at its limit (`ix_deliveries_pending`), on both databases.

Checked on the plan, not by a clock: SQLite's chosen index; on PostgreSQL, how many
deliveries the executed statement's look-ahead read (EXPLAIN ANALYZE) at a backlog of
eighty times the limit. (Which rows the UPDATE then takes by id is the planner's choice
by size: a hash join over a small table, the primary key over a large one.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, insert, text

from finsync.storage import outbox
from finsync.storage.db import transaction
from finsync.storage.schema import events

BACKLOG = 4000  # pending deliveries per target
LIMIT = 100
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _backlog(engine: Engine) -> None:
    rows = [{"event_id": f"e{n}", "type": "payment.applied", "schema_version": 1,
             "source": "billing", "source_event_id": f"e{n}", "occurred_at": NOW,
             "received_at": NOW, "correlation_id": f"c{n}", "aggregate_type": "payment",
             "aggregate_id": f"p{n}", "payload": "{}", "payload_hash": "h",
             "status": "accepted", "status_changed_at": NOW} for n in range(BACKLOG)]
    wanted = [outbox.NewDeliveries(f"e{n}", ("ledger", "revenue"), f"payment:p{n}", f"c{n}")
              for n in range(BACKLOG)]
    with transaction(engine) as conn:
        conn.execute(insert(events), rows)
        outbox.enqueue_many(conn, wanted, NOW - timedelta(minutes=1))
    if engine.dialect.name == "postgresql":
        with transaction(engine) as conn:
            conn.execute(text("ANALYZE deliveries"))


def _claim_statement(engine: Engine) -> tuple[str, Any]:
    """The statement (and parameters) of a buffer's claim: one target, at most 50 a lane."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith("UPDATE deliveries"):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with transaction(engine) as conn:
            claimed = outbox.claim(conn, "w", NOW, 60, LIMIT, only=("ledger",), lane_max=50)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(claimed) == 50  # the lane's share: every delivery here is in one lane
    return seen[0]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def test_a_claim_walks_the_pending_deliveries_of_its_target_and_stops(engine: Engine) -> None:
    _backlog(engine)
    statement, params = _claim_statement(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = [row[3] for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, params)]
            assert any("USING INDEX ix_deliveries_pending" in step for step in plan), plan
            return
        explained = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params).scalar_one()
        conn.rollback()
    walk = next(node for node in _nodes(explained[0]["Plan"]) if node["Node Type"] == "Limit")
    read = sum(node["Actual Rows"] * node["Actual Loops"] for node in _nodes(walk)
               if node.get("Relation Name") == "deliveries" and node.get("Alias") != "earlier")
    assert read <= 2 * LIMIT, explained  # not the backlog of 8,000
