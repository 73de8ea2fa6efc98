"""Contra revenue, the refund liability and the account maps (`contra`, `account_map`).

Worked figures: a 12,000.00 support contract for 2026 (365 days), billed on 1 January, and
concessions granted on it (docs/revrec/cases.md, sections 16.7.x)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import BillingFrequency, ContractLine, SubscriptionContract
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.journal import Side
from finsync.domain.money import Money
from finsync.domain.payment import Refund
from finsync.systems.revrec import (
    ContractBooked,
    InvoiceRecorded,
    PriceChangeKind,
    RevenueContractState,
    TransactionPriceChanged,
    apply_event,
    balances,
    book_contract,
    period_journal,
)
from finsync.systems.revrec.account_map import AccountMaps
from finsync.systems.revrec.contra import contra_to, refund_liability
from finsync.systems.revrec.errors import AccountMappingError
from finsync.systems.revrec.event import RefundRecorded
from finsync.systems.revrec.journal import AccountMap
from finsync.systems.revrec.schedule import recognised_to
from finsync.systems.revrec.serial import dumps_state, loads_state
from tests.unit.revrec.casecheck import CASE_ACCOUNTS

START, END = date(2026, 1, 1), date(2027, 1, 1)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def _booked() -> RevenueContractState:
    line = ContractLine("ln_support", "prod_support", "price_support", 1, usd("12000.00"),
                        START, END)
    contract = SubscriptionContract("con_support", "cus_1", "le_us", "USD", START, END,
                                    BillingFrequency.ANNUAL, (line,), 1)
    ssp = StandaloneSellingPrice("prod_support", usd("12000.00"), date(2000, 1, 1))
    state = book_contract(ContractBooked("evt_book", contract, (ssp,)))
    doc = DocumentLine("l1", "prod_support", "Support", 1, usd("12000.00"), usd("0"),
                       START, END, contract_line_id="ln_support")
    invoice = Invoice("inv_1", "INV-1", "cus_1", "con_support", 1, "le_us", "USD", START,
                      START, (doc,), usd("12000.00"), usd("0"), usd("12000.00"))
    return apply_event(state, InvoiceRecorded("evt_inv", invoice))


def _concession(event_id: str, on: date, amount: str) -> TransactionPriceChanged:
    return TransactionPriceChanged(event_id, on, usd(f"-{amount}"),
                                   PriceChangeKind.PRICE_CONCESSION,
                                   frozenset({"ln_support"}))


def _refund(event_id: str, on: date, amount: str) -> RefundRecorded:
    refund = Refund(f"re_{event_id}", "py_1", "cus_1", "le_us", usd(amount), on,
                    "service_issue")
    return RefundRecorded(event_id, refund, "ln_support")


def test_a_concession_is_contra_revenue_as_the_price_it_lowered_would_be_recognised() -> None:
    # 1,200.00 conceded on 1 April: by 1 May 1,200 x 120/365 = 394.52 of revenue is reduced.
    state = apply_event(_booked(), _concession("evt_sla", date(2026, 4, 1), "1200.00"))
    assert contra_to(state, date(2026, 4, 1)) == usd("0.00")
    assert contra_to(state, date(2026, 5, 1)) == usd("394.52")
    assert contra_to(state, END) == usd("1200.00")
    # gross = net + contra: round(3,550.684) + round(394.5205) = 3,550.68 + 394.52 =
    # 3,945.20; without the concession round(12,000 x 120/365 = 3,945.2055) = 3,945.21: net
    # and contra round apart, so gross is the unconceded revenue within one cent.
    may = date(2026, 5, 1)
    assert recognised_to(state, may) + contra_to(state, may) == usd("3945.20")
    assert recognised_to(_booked(), may) == usd("3945.21")


def test_a_variable_consideration_change_is_no_concession() -> None:
    change = TransactionPriceChanged("evt_vc", date(2026, 4, 1), usd("-1200.00"),
                                     PriceChangeKind.VARIABLE_CONSIDERATION)
    assert contra_to(apply_event(_booked(), change), END) == usd("0.00")


def test_billed_beyond_the_price_is_a_refund_liability_within_deferred_revenue() -> None:
    state = apply_event(_booked(), _concession("evt_sla", date(2026, 4, 1), "1200.00"))
    may = date(2026, 5, 1)
    assert refund_liability(state, may, balances(state, may)) == usd("1200.00")
    # All of the service delivered: 12,000 billed, price 10,800, deferred revenue 1,200.00,
    # all of it owed back.
    assert refund_liability(state, END, balances(state, END)) == usd("1200.00")
    assert balances(state, END).deferred_revenue == usd("1200.00")


def test_a_refund_naming_the_obligation_owes_nothing_back() -> None:
    state = apply_event(_booked(), _refund("evt_re", date(2026, 4, 1), "3000.00"))
    may = date(2026, 5, 1)
    assert refund_liability(state, may, balances(state, may)) == usd("0.00")
    assert contra_to(state, may) == usd("986.30")


def test_the_journal_credits_gross_and_debits_contra_and_moves_the_refund_liability() -> None:
    state = apply_event(_booked(), _concession("evt_sla", date(2026, 4, 1), "1200.00"))
    entry = period_journal([state], "le_us", Period(date(2026, 4, 1), date(2026, 5, 1)),
                           CASE_ACCOUNTS)
    assert entry is not None
    lines = {f"{ln.side.value}:{ln.account}": ln.amount for ln in entry.lines}
    assert lines == {"credit:4000": usd("986.30"), "debit:4910": usd("394.52"),
                     "debit:2400": usd("1791.78"), "credit:2450": usd("1200.00")}
    # Without the two accounts: the entry is net, as before (591.78 = 986.30 - 394.52).
    four = {k: v for k, v in CASE_ACCOUNTS.items()
            if k not in ("contra_revenue", "refund_liability")}
    old = period_journal([state], "le_us", Period(date(2026, 4, 1), date(2026, 5, 1)), four)
    assert old is not None
    assert {f"{ln.side.value}:{ln.account}": ln.amount for ln in old.lines} == {
        "credit:4000": usd("591.78"), "debit:2400": usd("591.78")}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["concession", "refund"]),
                          st.integers(min_value=0, max_value=364),
                          st.integers(min_value=1, max_value=150_000)),
                min_size=1, max_size=4))
def test_gross_is_the_unconceded_revenue_and_every_journal_balances(
        events: list[tuple[str, int, int]]) -> None:
    """Concessions and refunds on random days: gross revenue at every month start is the
    revenue without them, within one minor unit (net and contra round separately), and each
    month's journal balances with revenue - contra = the net movement."""
    state = _booked()
    for n, (kind, offset, cents) in enumerate(events):
        on = START + timedelta(days=offset)
        amount = str(Decimal(cents) / 100)
        event = (_concession(f"evt_{n}", on, amount) if kind == "concession"
                 else _refund(f"evt_{n}", on, amount))
        state = apply_event(state, event)
    plain = _booked()
    day = START
    while day < END:
        nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        gross = recognised_to(state, nxt) + contra_to(state, nxt)
        assert abs((gross - recognised_to(plain, nxt)).amount) <= Decimal("0.01"), nxt
        entry = period_journal([state], "le_us", Period(day, nxt), CASE_ACCOUNTS)
        if entry is not None:
            signed = {"4000": Decimal(0), "4910": Decimal(0)}
            for ln in entry.lines:
                if ln.account in signed:
                    sign = 1 if ln.side is Side.CREDIT else -1
                    signed[ln.account] += sign * ln.amount.amount
            net = recognised_to(state, nxt) - recognised_to(state, day)
            assert signed["4000"] + signed["4910"] == net.amount, day
        day = nxt


def test_a_state_stored_before_concessions_were_tracked_still_decodes() -> None:
    state = apply_event(_booked(), _concession("evt_sla", date(2026, 4, 1), "1200.00"))
    data = json.loads(dumps_state(state))
    for ob in data["obligations"]:
        for segment in ob["segments"]:
            segment.pop("concession", None)
            segment.pop("concession_base", None)
    old = loads_state(json.dumps(data))
    assert all(s.concession is None for ob in old.obligations for s in ob.segments)
    assert contra_to(old, END) == usd("0.00")  # no concession known: all of it is revenue
    assert loads_state(dumps_state(state)) == state


def test_an_account_map_refuses_an_unknown_role_by_name() -> None:
    with pytest.raises(AccountMappingError, match="contra_revenu"):
        AccountMap.of({**CASE_ACCOUNTS, "contra_revenu": "4910"})


def test_an_entity_overrides_only_the_roles_it_names() -> None:
    maps = AccountMaps.of(CASE_ACCOUNTS, {"le_eu": {"revenue": "4010",
                                                    "contra_revenue": "4911"}})
    eu, us = maps.of_entity("le_eu"), maps.of_entity("le_us")
    assert (eu.revenue, eu.contra_revenue, eu.deferred_revenue) == ("4010", "4911", "2400")
    assert us == AccountMap.of(CASE_ACCOUNTS)
    with pytest.raises(AccountMappingError, match="unknown account roles"):
        AccountMaps.of(CASE_ACCOUNTS, {"le_eu": {"revenu": "4010"}})
