"""The close's checklist as a value: each item's state from the cut-off's reads, `blocks`
exactly when a cut-off item is outstanding, the revenue journals' state, money as strings."""

from __future__ import annotations

from datetime import date

from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.domain.status import DeliveryStatus
from finsync.hub.close_checklist import (
    LISTED_MAX,
    CheckState,
    JournalState,
    SentJournal,
    checklist_of,
    journal_state,
)


def _journal(amount: str = "101.92") -> JournalEntry:
    money = Money.of(amount, "USD")
    return JournalEntry("je_1", "le_us", date(2026, 1, 31), "Revenue recognition", (
        JournalLine("4000", Side.CREDIT, money), JournalLine("2400", Side.DEBIT, money)))


def _states(outstanding: list[dict[str, object]], held: list[dict[str, object]],
            journals: list[SentJournal], status: PeriodStatus) -> dict[str, str]:
    made = checklist_of(outstanding, held, journals, status)
    return {i.key: i.state.value for i in made.items}


def test_an_empty_cutoff_in_an_open_period_leaves_the_close_to_do() -> None:
    made = checklist_of([], [], [], PeriodStatus.OPEN)
    assert not made.blocks
    assert {i.key: i.state for i in made.items} == {
        "raw_events_processed": CheckState.DONE, "events_sequenced": CheckState.DONE,
        "deliveries_settled": CheckState.DONE, "exceptions_held": CheckState.DONE,
        "revenue_journals": CheckState.TO_DO, "erp_period": CheckState.TO_DO}


def test_each_kind_of_cutoff_item_blocks_the_close() -> None:
    for kind, key in (("raw_event_unprocessed", "raw_events_processed"),
                      ("event_parked", "events_sequenced"),
                      ("delivery_outstanding", "deliveries_settled")):
        made = checklist_of([{"kind": kind}], [], [], PeriodStatus.OPEN)
        assert made.blocks, kind
        assert {i.key: i.state for i in made.items}[key] is CheckState.OUTSTANDING


def test_held_exceptions_do_not_block_and_carry_their_money_as_strings() -> None:
    held = [{"kind": "exception_held", "exception_id": 7, "class": "closed_period",
             "status": "open", "amount_minor": 600000, "currency": "USD",
             "event_id": "evt_1", "type": "payment.applied"}]
    made = checklist_of([], held, [], PeriodStatus.OPEN)
    item = next(i for i in made.items if i.key == "exceptions_held")
    assert (made.blocks, item.state) == (False, CheckState.IN_QUEUE)
    assert item.as_json()["items"][0]["amount_at_stake"] == {"amount": "6000.00",
                                                             "currency": "USD"}


def test_a_list_at_the_reads_limit_says_there_may_be_more() -> None:
    made = checklist_of([{"kind": "event_parked"}] * LISTED_MAX, [], [], PeriodStatus.OPEN)
    item = next(i for i in made.items if i.key == "events_sequenced")
    assert item.as_json()["count"] == LISTED_MAX and item.more


def test_the_revenue_journals_state() -> None:
    entry = _journal()
    posted = SentJournal(entry, "evt_1", JournalState.POSTED)
    held = SentJournal(entry, "evt_1", JournalState.HELD, "exception 7 (closed_period)")
    pending = SentJournal(entry, "evt_1", JournalState.PENDING)
    unsent = SentJournal(entry, None, JournalState.NOT_SENT)
    closed = PeriodStatus.CLOSED
    assert _states([], [], [posted], closed)["revenue_journals"] == "done"
    assert _states([], [], [held], closed)["revenue_journals"] == "in_queue"
    assert _states([], [], [pending], closed)["revenue_journals"] == "outstanding"
    assert _states([], [], [unsent], closed)["revenue_journals"] == "to_do"
    # Nothing recognised in a closed period: nothing to post.
    assert _states([], [], [], closed)["revenue_journals"] == "done"
    assert not checklist_of([], [], [pending], closed).blocks  # not a cut-off item
    assert posted.as_json()["total"] == {"amount": "101.92", "currency": "USD"}


def test_a_journal_is_posted_only_when_every_delivery_is_done() -> None:
    done, pending = DeliveryStatus.DONE, DeliveryStatus.PENDING
    assert journal_state([done], None) is JournalState.POSTED
    assert journal_state([done, pending], None) is JournalState.PENDING
    assert journal_state([pending], "exception 3 (closed_period)") is JournalState.HELD
    assert journal_state([], None) is JournalState.PENDING
