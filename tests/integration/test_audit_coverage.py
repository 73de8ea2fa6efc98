"""The legacy logs are covered by the trail: every `triage_actions` row and every embedded
ledger period-log row has its trail record with the same values, so a row inserted, edited
(or whose record is missing) is named by `audit verify`. The rows and their records are
written here through the conventions the writers use (`coverage.triage_action_state`,
`coverage.period_entry`). On both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.audit.coverage import AlreadyAdoptedError, adopt, period_entry, triage_action_state
from finsync.audit.signing import Keyring
from finsync.audit.verify import Verdict, verify
from finsync.domain.errors import ExceptionClass
from finsync.domain.status import ActionStatus
from finsync.storage import exception_log, triage_log
from finsync.storage.db import reading, transaction
from finsync.storage.exception_log import NewException
from finsync.storage.schema import triage_actions
from finsync.systems.ledger.migrate import upgrade as upgrade_ledger
from finsync.systems.ledger.tables import period_log

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _verify(engine: Engine) -> Verdict:
    with reading(engine) as conn:
        return verify(conn, Keyring.of(None))


def _uncovered(engine: Engine) -> list[tuple[str, int, str]]:
    verdict = _verify(engine)
    assert verdict.tamper is None
    return [(u.log, u.row_id, u.message) for u in verdict.uncovered]


def _record_action(conn: Connection, action_id: int, actor: str, reason: str,
                   verb: str) -> None:
    row = triage_log.get(conn, action_id)
    assert row is not None
    trail.append(conn, Entry(actor, verb, "triage_action", str(action_id), reason,
                             after=triage_action_state(row)), AT)


def _action(engine: Engine, status: ActionStatus = ActionStatus.DONE) -> int:
    """An exception and one action on it, recorded as triage records it."""
    with transaction(engine) as conn:
        exception_id = exception_log.open_exception(conn, NewException(
            ExceptionClass.OWNERSHIP_VIOLATION, f"own:{AT.timestamp()}", "not the owner"), AT)
        action_id = triage_log.record(conn, exception_id, "resolve", {}, "fixed in billing",
                                      "ar.clerk", status, AT)
        _record_action(conn, action_id, "ar.clerk", "fixed in billing", "exception.resolve")
    return action_id


def test_actions_with_their_records_are_covered_through_approval(engine: Engine) -> None:
    action_id = _action(engine, ActionStatus.PENDING_APPROVAL)
    assert _verify(engine).ok
    with transaction(engine) as conn:
        triage_log.decide(conn, action_id, ActionStatus.DONE, "controller", "ok", AT)
        _record_action(conn, action_id, "controller", "ok", "approval.approve")
    assert _verify(engine).ok


ACTION_EDITS = {"requested_by": "AR.CLERK", "reason": "no reason", "status": "rejected",
                "decided_by": "ar.clerk", "action": "ignore"}


def test_an_action_edited_with_sql_is_named(engine: Engine) -> None:
    action_id = _action(engine)
    with engine.connect() as conn:
        original = dict(conn.execute(select(triage_actions).where(
            triage_actions.c.id == action_id)).mappings().one())
    for column, value in ACTION_EDITS.items():
        with engine.begin() as conn:
            conn.execute(update(triage_actions).where(triage_actions.c.id == action_id)
                         .values({column: value}))
        assert _uncovered(engine) == [
            ("triage_actions", action_id, f"differs from its trail record in {column}")]
        with engine.begin() as conn:
            conn.execute(update(triage_actions).where(triage_actions.c.id == action_id)
                         .values({column: original[column]}))
        assert _verify(engine).ok


def test_an_action_inserted_with_sql_is_named(engine: Engine) -> None:
    first = _action(engine)
    with engine.begin() as conn:
        row = triage_log.get(conn, first)
        assert row is not None
        forged = conn.execute(insert(triage_actions).returning(triage_actions.c.id).values(
            exception_id=row["exception_id"], action="ignore", params="{}",
            reason="written off", requested_by="mallory", requested_at=AT,
            status=ActionStatus.DONE)).scalar_one()
    assert _uncovered(engine) == [("triage_actions", forged, "no trail record")]
    assert _verify(engine).uncovered_count == 1


@pytest.fixture
def ledger(engine: Engine) -> Engine:
    upgrade_ledger(engine)
    return engine


def _change(conn: Connection, period: str, before: str, after: str, actor: str,
            reason: str | None, *, recorded: bool = True) -> int:
    """A period change as the embedded ledger logs it, and its trail record."""
    new_id = conn.execute(insert(period_log).returning(period_log.c.id).values(
        entity="le_us", period=period, from_status=before, to_status=after, actor=actor,
        reason=reason, at=AT)).scalar_one()
    if recorded:
        trail.append(conn, period_entry("le_us", period, before, after, actor, reason), AT)
    return int(new_id)


def test_period_changes_with_their_records_are_covered(ledger: Engine) -> None:
    with transaction(ledger) as conn:
        _change(conn, "2026-11", "open", "closed", "gl.accountant", None)
        # A reopen request (an approval record of its own, no log row), then the reopen.
        trail.append(conn, Entry("gl.accountant", "approval.request", "approval", "1",
                                 "late invoice"), AT)
        _change(conn, "2026-11", "closed", "open", "controller", "late invoice")
        _change(conn, "2026-11", "open", "closed", "gl.accountant", None)
    assert _verify(ledger).ok


PERIOD_EDITS = {"actor": ("GL.ACCOUNTANT", "controller"),
                "reason": ("audit asked", "late invoice"),
                "to_status": ("soft_closed", "open"), "from_status": ("soft_closed", "closed")}


def test_a_period_log_row_edited_with_sql_is_named(ledger: Engine) -> None:
    with transaction(ledger) as conn:
        _change(conn, "2026-10", "open", "closed", "gl.accountant", None)
        edited = _change(conn, "2026-11", "closed", "open", "controller", "late invoice")
        _change(conn, "2026-12", "open", "closed", "gl.accountant", None)
    for column, (value, original) in PERIOD_EDITS.items():
        with ledger.begin() as conn:
            conn.execute(update(period_log).where(period_log.c.id == edited)
                         .values({column: value}))
        [(log, row_id, message)] = _uncovered(ledger)
        assert (log, row_id) == ("ledger_period_log", edited)
        assert message.startswith("no trail record of le_us:2026-11")
        with ledger.begin() as conn:
            conn.execute(update(period_log).where(period_log.c.id == edited)
                         .values({column: original}))
        assert _verify(ledger).ok


def test_a_period_change_without_its_record_is_named(ledger: Engine) -> None:
    with transaction(ledger) as conn:
        _change(conn, "2026-11", "open", "closed", "gl.accountant", None)
        quiet = _change(conn, "2026-11", "closed", "open", "mallory", "oops", recorded=False)
    assert [r for _, r, _ in _uncovered(ledger)] == [quiet]


def test_rows_older_than_the_trail_are_adopted_once(ledger: Engine) -> None:
    """A database upgraded to the trail: its earlier rows are recorded once by adopt; a
    row written after the trail began without its record is not adopted, nor is an edited
    one, and a second adoption is refused."""
    earlier = AT.replace(year=2025)
    with transaction(ledger) as conn:
        exception_id = exception_log.open_exception(conn, NewException(
            ExceptionClass.OWNERSHIP_VIOLATION, "own:old", "not the owner"), earlier)
        old_action = triage_log.record(conn, exception_id, "ignore", {}, "old", "ar.clerk",
                                       ActionStatus.DONE, earlier)
        old_change = conn.execute(insert(period_log).returning(period_log.c.id).values(
            entity="le_us", period="2025-11", from_status="open", to_status="closed",
            actor="gl.accountant", reason=None, at=earlier)).scalar_one()
    edited = _action(ledger)  # the trail's first record, at AT
    with transaction(ledger) as conn:
        quiet = _change(conn, "2026-11", "closed", "open", "mallory", "x", recorded=False)
    with ledger.begin() as conn:
        conn.execute(update(triage_actions).where(triage_actions.c.id == edited)
                     .values(reason="rewritten"))
    assert {r for _, r, _ in _uncovered(ledger)} == {old_action, old_change, quiet, edited}
    with transaction(ledger) as conn:
        assert adopt(conn, AT) == {"triage_actions": 1, "ledger_period_log": 1}
    assert {r for _, r, _ in _uncovered(ledger)} == {quiet, edited}
    with pytest.raises(AlreadyAdoptedError), transaction(ledger) as conn:
        adopt(conn, AT)
