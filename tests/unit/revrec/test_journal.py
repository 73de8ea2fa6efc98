"""The `revenue_change` dimension of catch-up adjustment lines stays within the hub's id
limit (`journal.changes_named`), so a close with many late changes still posts.

January of the 60,000.00 seats contract (test_journal_book) is closed; then 30 SLA credits
of 1.00 each for January arrive, each under a long event id (60 characters): February's
journal catches January up by 30.00, and the 30 ids space-joined are 30 x 60 + 29 = 1,829
characters, beyond 255.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine, select

from finsync.domain.clock import month_period
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import RevenueJournalRecorded
from finsync.domain.journal import JournalEntry
from finsync.domain.limits import ID_MAX_CHARS, InputLimits, check_draft
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.journal import changes_named
from finsync.systems.revrec.journal_store import encode_entry
from tests.unit.revrec.test_journal_book import _january_credit, _service, _sums

JAN, FEB = month_period("2026-01"), month_period("2026-02")
LATE = tuple(f"evt_{n:02d}_" + "x" * 53 for n in range(30))  # 60 characters each


def test_ids_that_fit_are_joined_as_before() -> None:
    assert changes_named(("evt-cm1",)) == "evt-cm1"
    assert changes_named(("evt-a", "evt-b")) == "evt-a evt-b"
    exact = ("a" * 127, "b" * 127)  # 255 characters joined: still fits
    assert changes_named(exact) == " ".join(exact)


def test_ids_beyond_the_limit_name_those_that_fit_and_count_the_rest() -> None:
    value = changes_named(LATE)
    # 4 ids and their spaces (243) and " +26 more" (9) make 252; a fifth id would make 313.
    assert value == " ".join([*LATE[:4], "+26 more"])
    assert len(value) <= ID_MAX_CHARS
    assert changes_named(LATE) == value  # a function of the ids alone
    assert changes_named(("y" * 300, "z")) == "+2 more"  # not even the first fits


def test_the_marker_is_counted_with_its_digits() -> None:
    ids = tuple(f"e{n:03d}" for n in range(120))  # 4 characters + 1 each
    value = changes_named(ids, chars_max=40)
    shown, marker = value.split(" +")
    assert len(value) <= 40 and marker == f"{120 - len(shown.split())} more"
    assert value == "e000 e001 e002 e003 e004 e005 +114 more"


def _dimensions(entry: JournalEntry) -> list[dict[str, str]]:
    return [dict(line.dimensions) for line in entry.lines]


def test_a_catch_up_of_many_long_changes_posts_within_the_limits(engine: Engine) -> None:
    service = _service(engine)
    service.close_journals("le_us", JAN, "close:le_us:2026-01")
    for n, event_id in enumerate(LATE):
        service.apply_credit_memo(_january_credit(f"cm_{n}", "1.00"), f"k-cm{n}", event_id)

    (february,) = service.period_journals("le_us", FEB)
    assert _sums(february, adjusted=True) == {"debit:4910": Decimal("30.00"),
                                              "credit:2400": Decimal("30.00")}
    changes = {d["revenue_change"] for d in _dimensions(february) if "adjusts_period" in d}
    assert changes == {" ".join([*LATE[:4], "+26 more"])}
    assert all(len(v) <= ID_MAX_CHARS for d in _dimensions(february) for v in d.values())
    _assert_recoverable(engine, _dimensions(february)[-1], LATE)
    (again,) = service.period_journals("le_us", FEB)
    assert encode_entry(again) == encode_entry(february)  # same input, same journal

    (closed,) = service.close_journals("le_us", FEB, "close:le_us:2026-02")
    assert encode_entry(closed) == encode_entry(february)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    draft = DraftEnvelope(RevenueJournalRecorded(closed), "revrec",
                          f"journal_entry:{closed.id}:v1", now, "close:le_us:2026-02")
    check_draft(draft, InputLimits(), date(2026, 3, 1))  # the hub's intake check: no refusal


def _assert_recoverable(engine: Engine, dimensions: dict[str, str],
                        expected: tuple[str, ...]) -> None:
    """The recipe of engine.md: the ids shown plus N are the contract's distinct events in
    the change log (`revrec_changes`, seq order) from the first one shown."""
    *shown, count, _ = dimensions["revenue_change"].split(" ")
    wanted = len(shown) + int(count.removeprefix("+"))
    with engine.connect() as conn:
        rows = conn.execute(select(t.changes.c.event_id).where(
            t.changes.c.revenue_contract_id == dimensions["revenue_contract"])
            .order_by(t.changes.c.seq)).scalars().all()
    logged = list(dict.fromkeys(rows))
    first = logged.index(shown[0])
    assert tuple(logged[first:first + wanted]) == expected
