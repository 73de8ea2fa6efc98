"""Canonical order of events (issue 16 item 4): whatever order events arrive in, the revenue
contract comes out the same; a back-dated arrival rebuilds it, schedule versions only grow."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.clock import Period
from finsync.domain.invoice import CreditMemo, DeliveredPart, DocumentLine, Invoice
from finsync.domain.money import total
from finsync.systems.revrec import (
    ContractBooked,
    CreditMemoApplied,
    InvoiceRecorded,
    ModificationFacts,
    PriceChangeKind,
    ProgressReported,
    RecognitionPattern,
    RevenueContractState,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    apply_event,
    book_contract,
    period_journals,
    replay,
    schedules,
)
from finsync.systems.revrec.balance import balances
from finsync.systems.revrec.casefile import load_case
from finsync.systems.revrec.engine import rebuild
from finsync.systems.revrec.errors import RevenueError
from finsync.systems.revrec.event import ChangeOrderApproved
from finsync.systems.revrec.order import (
    Precedence,
    canonical,
    keyed,
    modification_floor,
    order_key,
    precedence,
)
from finsync.systems.revrec.schedule import TracedLine
from tests.unit.revrec.builders import START, booked, line, modified, ssp, usd
from tests.unit.revrec.casecheck import CASES

ACCOUNTS = {"deferred_revenue": "2400", "revenue": "4000", "contract_asset": "1250",
            "unbilled_receivable": "1260"}
JUL1 = date(2026, 7, 1)
MONTHS = tuple(date(2026 + (m // 12), m % 12 + 1, 1) for m in range(13))


# -- arrival, as the service does it (event_log.arrive), without a database ------------------

def arrive(book: ContractBooked, events: Sequence[RevenueEvent]) -> list[RevenueContractState]:
    """Each event in arrival order: applied when it sorts after every event kept, else the
    contract is rebuilt from booking. One the engine refuses where it stands is retried
    after the others (the hub's sequencing retry). Returns every state handed out."""
    baseline = book_contract(book)
    state, pending = baseline, list(events)
    kept: list[RevenueEvent] = []
    seen = [state]
    stalled = 0
    while pending and stalled <= len(pending):
        event = pending.pop(0)
        key = order_key(event, modification_floor(state))
        late = any(k > key for k, _ in keyed(kept, modification_floor(baseline)))
        try:
            state = (rebuild(baseline, [*kept, event], state, event) if late
                     else apply_event(state, event))
        except RevenueError:
            pending.append(event)
            stalled += 1
            continue
        kept.append(event)
        seen.append(state)
        stalled = 0
    assert not pending, f"never applied: {[e.event_id for e in pending]}"
    return seen


def figures(state: RevenueContractState) -> tuple[object, ...]:
    """What must not depend on arrival: schedules, balances and journals, amounts only
    (references carry versions, which grow with the arrivals: `test_versions_only_grow`)."""
    sched = tuple((s.obligation_id, s.allocated_price,
                   tuple((li.period, li.amount) for li in s.lines)) for s in schedules(state))
    owed = tuple(balances(state, day) for day in MONTHS)
    journals = tuple(tuple((ln.account, ln.side, ln.amount) for ln in entry.lines)
                     for start, end in itertools.pairwise(MONTHS)
                     for entry in period_journals([state], "le_us", Period(start, end),
                                                  ACCOUNTS))
    decisions = tuple((d.event_id, d.treatment, d.catch_up) for d in state.decisions)
    return sched, owed, journals, decisions, state.billings


# -- generated contracts -----------------------------------------------------------------

SSPS = tuple(ssp(f"prod_{i}", str(400 * (i + 1))) for i in range(4))


def _document(kind: str, n: int, on: date, lines: Sequence[tuple[str, int]]
              ) -> InvoiceRecorded | CreditMemoApplied:
    doc_lines = tuple(DocumentLine(f"{kind}{n}_{i}", f"prod_{line_id[2:]}", line_id, 1,
                                   usd(amount), usd(0), START, date(2027, 1, 1))
                      for i, (line_id, amount) in enumerate(lines))
    amount = total([li.amount for li in doc_lines], "USD")
    if kind == "inv":
        return InvoiceRecorded(f"evt_inv{n}", Invoice(
            f"in_{n}", f"INV-{n}", "cus_t", "con_t", 1, "le_us", "USD", on, on, doc_lines,
            amount, usd(0), amount))
    memo = CreditMemo(f"cm_{n}", f"CM-{n}", "in_0", "cus_t", "le_us", "USD", on,
                      "sla_credit" if n % 2 else "billing_error", doc_lines, amount, usd(0),
                      amount)
    return CreditMemoApplied(f"evt_cm{n}", memo)


@st.composite
def histories(draw: st.DrawFn) -> tuple[ContractBooked, list[RevenueEvent]]:
    """Ratable and per-unit lines over 2026; modifications, price changes, invoices, credit
    memos and deliveries on few distinct days, so many share a day and many are back-dated."""
    days = [START + timedelta(days=d) for d in draw(st.lists(
        st.integers(0, 330), min_size=1, max_size=3))]
    per_unit = draw(st.booleans())
    first = (line("ln0", draw(st.integers(1, 50)), f"{draw(st.integers(100, 9000))}.00",
                  "prod_0"),
             line("ln1", 10, f"{draw(st.integers(100, 9000))}.00", "prod_1"))
    patterns = {"prod_1": RecognitionPattern.PER_UNIT if per_unit
                else RecognitionPattern.RATABLE}
    book = booked(*first, ssps=SSPS, patterns=patterns)
    events: list[RevenueEvent] = []
    current = list(first)
    for version in range(2, 2 + draw(st.integers(0, 2))):
        added = line(f"ln{version}", draw(st.integers(1, 5)), f"{draw(st.integers(50, 900))}.00",
                     f"prod_{version}", draw(st.sampled_from(days)))
        current = [*current, added]
        facts = ModificationFacts(True, draw(st.booleans()))
        events.append(modified(f"evt_m{version}", draw(st.sampled_from(days)), *current,
                               version=version, facts=facts, ssps=SSPS))
    for n in range(draw(st.integers(1, 3))):
        events.append(TransactionPriceChanged(
            f"evt_tp{n}", draw(st.sampled_from(days)), usd(draw(st.integers(-300, 3000))),
            PriceChangeKind.VARIABLE_CONSIDERATION))
    for n in range(draw(st.integers(0, 2))):
        amounts = [("ln0", draw(st.integers(10, 90))), ("ln1", draw(st.integers(10, 90)))]
        events.append(_document("inv", n, draw(st.sampled_from(days)), amounts))
        events.append(_document("cm", n + 1, draw(st.sampled_from(days)),
                                [(amounts[0][0], 5)]))
    if per_unit:
        events.append(UnitsDelivered("evt_d0", "ln1", draw(st.sampled_from(days)), 4))
    return book, events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_every_arrival_order_gives_the_same_schedules_balances_and_journals(
        history: tuple[ContractBooked, list[RevenueEvent]], data: st.DataObject) -> None:
    book, events = history
    try:
        expected = replay(book, events)
    except RevenueError:  # a history the engine refuses in canonical order: nothing to compare
        return
    for _ in range(3):
        shuffled = data.draw(st.permutations(events))
        assert figures(arrive(book, shuffled)[-1]) == figures(expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_versions_only_grow_and_a_reference_never_changes_meaning(
        history: tuple[ContractBooked, list[RevenueEvent]], data: st.DataObject) -> None:
    book, events = history
    try:
        replay(book, events)
    except RevenueError:
        return
    given_out: dict[str, object] = {}
    last: dict[str, int] = {}
    for state in arrive(book, data.draw(st.permutations(events))):
        for ob in state.obligations:
            assert ob.version >= last.get(ob.obligation_id, 0)
            last[ob.obligation_id] = ob.version
            reference = f"{ob.obligation_id}@v{ob.version}"
            meaning = (ob.allocated_price, tuple(li.amount for li in
                                                  _schedule(state, ob.obligation_id)))
            assert given_out.setdefault(reference, meaning) == meaning


def _schedule(state: RevenueContractState, obligation_id: str) -> tuple[TracedLine, ...]:
    found = [s for s in schedules(state) if s.obligation_id == obligation_id]
    return tuple(found[0].lines)


# -- the rules, one by one -----------------------------------------------------------------

def test_one_day_orders_estimates_modification_documents_then_occurrences() -> None:
    mod = modified("evt_z", JUL1, line("ln_a", 1, "1.00"), ssps=SSPS)
    change = TransactionPriceChanged("evt_y", JUL1, usd(1), PriceChangeKind.VOLUME_TRUE_UP)
    after = TransactionPriceChanged("evt_x", JUL1, usd(1), PriceChangeKind.VOLUME_TRUE_UP,
                                    promised_before="amd_evt_z")
    invoice = _document("inv", 0, JUL1, [("ln_a", 1)])
    delivered = UnitsDelivered("evt_a", "ln_a", JUL1, 1)
    earlier = UnitsDelivered("evt_zz", "ln_a", JUL1 - timedelta(days=1), 1)
    on_delivered = TransactionPriceChanged(
        "evt_0", JUL1, usd(-1), PriceChangeKind.PRICE_CONCESSION, frozenset({"ln_a"}),
        delivered=DeliveredPart(usd(-1)))  # counts the day's deliveries: after them
    assert [e.event_id for e in canonical(
        [on_delivered, delivered, invoice, after, mod, change, earlier])] == [
        "evt_zz", "evt_y", "evt_z", "evt_x", "evt_inv0", "evt_a", "evt_0"]
    assert [precedence(e) for e in (change, mod, after, invoice, delivered, on_delivered)
            ] == list(Precedence)


def test_an_amendment_dated_before_the_version_it_follows_takes_that_versions_place() -> None:
    v2 = modified("evt_b", date(2026, 5, 1), line("ln_a", 2, "1.00"), version=2, ssps=SSPS)
    v3 = modified("evt_a", date(2026, 4, 1), line("ln_a", 3, "1.00"), version=3, ssps=SSPS)
    change = TransactionPriceChanged("evt_c", date(2026, 4, 15), usd(1),
                                     PriceChangeKind.VOLUME_TRUE_UP)
    assert [e.event_id for e in canonical([v3, change, v2])] == ["evt_c", "evt_b", "evt_a"]


def _same_day() -> tuple[ContractBooked, list[RevenueEvent]]:
    """order_same_day_price_change.json in code: S and H over 2026, on 1 July analytics added
    below its SSP (25-13(a)) and +3,600 re-estimated."""
    s, h = line("ln_s", 1, "12000.00", "prod_s"), line("ln_h", 1, "24000.00", "prod_h")
    a = line("ln_a", 1, "10000.00", "prod_a", JUL1)
    ssps = (ssp("prod_s", "12000"), ssp("prod_h", "36000"), ssp("prod_a", "12000"))
    mod = modified("evt_mod", JUL1, s, h, a, ssps=ssps,
                   facts=ModificationFacts(True, False))
    change = TransactionPriceChanged("evt_tp", JUL1, usd("3600.00"),
                                     PriceChangeKind.VARIABLE_CONSIDERATION)
    return booked(s, h, ssps=ssps), [mod, change]


@pytest.mark.parametrize("reverse", [False, True], ids=["modification-first", "change-first"])
def test_a_same_day_price_change_catches_up_whichever_arrives_first(reverse: bool) -> None:
    book, events = _same_day()
    state = arrive(book, events[::-1] if reverse else events)[-1]
    july = {s.obligation_id: next(li.amount for li in s.lines if li.period.start == JUL1)
            for s in schedules(state)}
    # S: round(4,909.32 + 5,000.77 x 31/184) - round(9,000 x 181/365) = 5,751.84 - 4,463.01;
    # the catch-up of January-June, 900 x 181/365 = 446.31, is in it (cases.md)
    assert july == {"ln_s": usd("1288.83"), "ln_h": usd("3866.47"), "ln_a": usd("842.52")}
    assert state.decisions[0].catch_up == (("ln_s", usd(0)), ("ln_h", usd(0)))


def test_a_change_order_places_no_later_contract_version() -> None:
    """A change order's decision makes no contract version, so a version dated before it
    takes its place by the versions before it (after v2 on 1 March, not after the change
    order of 1 April): arrival and the canonical replay agree."""
    ssps = (ssp("prod_p", "1000.00"),)
    progress = {"prod_p": RecognitionPattern.PROGRESS}
    facts = ModificationFacts(True, False, frozenset({"ln_p"}))
    book = booked(line("ln_p", 1, "1000.00", "prod_p"), ssps=ssps, patterns=progress)
    events: list[RevenueEvent] = [
        ProgressReported("evt_p1", "ln_p", date(2026, 1, 31), Decimal(20)),
        modified("evt_v2", date(2026, 3, 1), line("ln_p", 1, "1100.00", "prod_p"),
                 facts=facts, ssps=ssps),
        ProgressReported("evt_p2", "ln_p", date(2026, 3, 20), Decimal(40)),
        ChangeOrderApproved("evt_co", "ln_p", date(2026, 4, 1), usd("100.00")),
        modified("evt_v3", date(2026, 3, 15), line("ln_p", 1, "1200.00", "prod_p"),
                 version=3, facts=facts, ssps=ssps)]
    assert figures(arrive(book, events)[-1]) == figures(replay(book, events))


def test_a_rebuild_keeps_unchanged_obligations_and_numbers_changed_ones_after() -> None:
    book, events = _same_day()
    states = arrive(book, events)  # the modification first, then the change that sorts before
    before, after = states[-2], states[-1]
    versions = {ob.obligation_id: ob.version for ob in before.obligations}
    assert versions == {"ln_s": 2, "ln_h": 2, "ln_a": 1}
    # rebuilt: S and H were revised by the change before the modification (3 revisions), the
    # shared prefix is booking only, so the rest is numbered after v2. A has the same one
    # revision (the modification) but another allocation: a revision for the rebuild, v2
    assert {ob.obligation_id: [r.version for r in ob.revisions] for ob in after.obligations} == {
        "ln_s": [1, 3, 4], "ln_h": [1, 3, 4], "ln_a": [1, 2]}
    assert after.obligation("ln_a").revisions[-1].cause == "canonical order"


def test_events_repeated_in_a_rebuild_change_nothing() -> None:
    book, events = _same_day()
    once = replay(book, events)
    assert replay(book, [*events, *events[::-1]]) == once
    assert apply_event(once, events[0]) is once


# -- 606-10-32-45(a) refusals --------------------------------------------------------------

def _promised(on: date, named: str = "amd_evt_mod") -> TransactionPriceChanged:
    return TransactionPriceChanged("evt_vc", on, usd("40.00"),
                                   PriceChangeKind.VARIABLE_CONSIDERATION,
                                   promised_before=named)


def test_promised_before_an_unknown_modification_is_refused() -> None:
    book, events = _same_day()
    state = replay(book, events)
    with pytest.raises(RevenueError, match=r"promised_before: .* no modification 'amd_nope'"):
        apply_event(state, _promised(date(2026, 9, 1), "amd_nope"))


def test_promised_before_a_separate_contract_is_refused_naming_the_paragraph() -> None:
    s = line("ln_s", 1, "12000.00", "prod_s")
    more = line("ln_more", 1, "6000.00", "prod_s", JUL1)
    ssps = (ssp("prod_s", "12000"),)
    state = replay(booked(s, ssps=ssps), [modified("evt_mod", JUL1, s, more, ssps=ssps,
                                                   facts=ModificationFacts(True, True))])
    with pytest.raises(RevenueError, match=r"606-10-25-12; 606-10-32-45\(a\) applies after"):
        apply_event(state, _promised(date(2026, 9, 1)))


def test_promised_before_a_later_modification_is_refused() -> None:
    book, events = _same_day()
    state = replay(book, events)
    with pytest.raises(RevenueError, match="dated before amd_evt_mod"):
        apply_event(state, _promised(date(2026, 6, 1)))


def test_promised_before_with_a_second_25_13_modification_is_left_out() -> None:
    book, events = _same_day()
    s, h = line("ln_s", 1, "12000.00", "prod_s"), line("ln_h", 1, "24000.00", "prod_h")
    a = line("ln_a", 1, "10000.00", "prod_a", JUL1)
    b = line("ln_b", 1, "1000.00", "prod_a", date(2026, 9, 1))
    ssps = (ssp("prod_s", "12000"), ssp("prod_h", "36000"), ssp("prod_a", "12000"))
    second = modified("evt_mod3", date(2026, 9, 1), s, h, a, b, version=3, ssps=ssps,
                      facts=ModificationFacts(True, False))
    state = replay(book, [*events, second])
    with pytest.raises(RevenueError, match="another 25-13 modification"):
        apply_event(state, _promised(date(2026, 10, 1)))


def test_promised_before_splits_on_inception_ssps_and_the_pool() -> None:
    """Example 6's rule on the same-day contract: 400 promised before the modification, on
    the inception SSPs 12,000 : 36,000 -> S 100, H 300; by 1 July S had transferred 181/365
    of its service: 100 x 181/365 = 49.59 now, 50.41 to the pool (and H 148.77 / 151.23)."""
    book, events = _same_day()
    state = replay(book, events)
    changed = apply_event(state, TransactionPriceChanged(
        "evt_vc", date(2026, 9, 1), usd("400.00"), PriceChangeKind.VARIABLE_CONSIDERATION,
        promised_before="amd_evt_mod"))
    assert changed.transaction_price == state.transaction_price + usd("400.00")
    detail = {ob.obligation_id: ob.revisions[-1].detail for ob in changed.obligations}
    assert "49.59 USD for what was transferred by then" in detail["ln_s"]
    assert "148.77 USD for what was transferred by then" in detail["ln_h"]
    pooled = Decimal("50.41") + Decimal("151.23")
    shares = {ob.obligation_id: (ob.allocated_price - state.obligation(
        ob.obligation_id).allocated_price).amount for ob in changed.obligations}
    assert shares["ln_a"] + shares["ln_s"] + shares["ln_h"] == Decimal("400.00")
    assert shares["ln_s"] - Decimal("49.59") + shares["ln_h"] - Decimal("148.77") + shares[
        "ln_a"] == pooled


def test_a_change_not_promised_before_goes_to_the_modified_contract_only() -> None:
    """Example 6 with the 40 not attributable to consideration promised before the
    modification (606-10-32-45(b)): the obligations unsatisfied immediately after it, Y and
    Z, by their SSPs then (600 : 600): 20 each; X, transferred before, takes none."""
    case = load_case((CASES / "order_example6_promised_before.json").read_text())
    events = [replace(e.event, promised_before=None)
              if isinstance(e.event, TransactionPriceChanged) else e.event for e in case.events]
    state = replay(case.booked, events)
    assert {ob.obligation_id: ob.allocated_price for ob in state.obligations} == {
        "ln_x": usd("600.00"), "ln_y": usd("470.00"), "ln_z": usd("470.00")}
