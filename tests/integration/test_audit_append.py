"""The audit trail's append: dense sequence numbers, each record chained to the one before,
in the caller's transaction (a rolled-back change leaves no record)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from finsync.audit import trail
from finsync.audit.chain import GENESIS, Entry, record_hash, timestamp
from finsync.audit.tables import trail as table
from finsync.storage.db import reading, transaction

AT = datetime(2026, 12, 6, 3, 30, 0, 123456, tzinfo=UTC)


def _entry(n: int) -> Entry:
    return Entry("ar.clerk", "exception.resolve", "exception", str(n), f"reason {n}",
                 before={"status": "open"}, after={"status": "resolved", "n": n},
                 correlation_id=f"corr-{n}")


def test_records_chain_in_order_and_rehash_from_their_stored_fields(engine: Engine) -> None:
    for n in range(3):
        with transaction(engine) as conn:
            assert trail.append(conn, _entry(n), AT) == n + 1
    with reading(engine) as conn:
        rows = [dict(r) for r in conn.execute(select(table).order_by(table.c.seq)).mappings()]
    previous = GENESIS
    for row in rows:
        assert row["prev_hash"] == previous
        stored = {**row, "at": timestamp(row["at"])}
        assert record_hash(stored) == row["hash"]
        previous = row["hash"]


def test_a_rolled_back_change_leaves_no_record(engine: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        trail.append(conn, _entry(1), AT)
        raise RuntimeError("the change failed")
    with transaction(engine) as conn:
        assert trail.append(conn, _entry(2), AT) == 1
