"""Month-end invariants of the revenue engine over generated contracts (issue 16, Must hold):
cumulative rounding does not drift, and billed - recognised is what the balances say.

1. Cumulative rounding. For every obligation and every month end t of its schedule, with
   C(t) the engine's exact (unrounded Decimal) cumulative revenue and R(t) the sum of the
   schedule's lines up to t:
   - |R(t) - C(t)| <= 1/2 minor unit. A line is round(C(b)) - round(C(a)) and the first
     boundary's cumulative is 0, so the lines telescope to R(t) = round(C(t)): the error
     is one rounding, whatever the number of months (rounding each month's amount instead
     would let it grow by up to 1/2 minor unit a month).
   - each month's line is within 1 minor unit of the exact month's revenue C(b) - C(a):
     two roundings of at most 1/2 each. This is the issue's "one minor unit": no month is
     off by more, and the error never accumulates.
   - independently of the engine's own arithmetic, for plain ratable contracts by day the
     exact cumulative is a rational number (allocated x weighted days elapsed / weighted
     days), computed with `Fraction`; R(t) is within 1/2 minor unit of it, plus 10**-15 for
     the 28-digit Decimal context the engine computes C(t) in (|C - exact| < 10**-18 for
     amounts below 10**9).
   Per obligation is the right unit: every schedule is rounded on its own, so a contract's
   total may sit up to 1/2 minor unit x obligations from exact, never more.
2. Balances. At every month start of the contract's life (balances are at 00:00), over
   random contracts with invoices, credit memos (concessions and billing corrections),
   modifications and price changes: billed - recognised = deferred revenue - contract asset
   - unbilled receivable, where billed is summed from the documents the test issued (not
   from the engine's billings) and recognised from the schedules' lines (not from the
   balance code's cumulative); each balance is >= 0, and a contract is presented net
   (606-10-45-1): deferred revenue and (contract asset + unbilled receivable) are never
   both above zero. Events come in date order (as the sequencer gives them), and in any
   order: the engine applies them in its canonical order (engine.md, "Order of events"),
   so a back-dated price change is placed before the modification it predates.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from finsync.domain.contract import ContractLine
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ContractBooked,
    ContractModified,
    CreditMemoApplied,
    InvoiceRecorded,
    ModificationFacts,
    PriceChangeKind,
    RecognitionPattern,
    RevenueContractState,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    apply_event,
    balances,
    book_contract,
    obligation_schedule,
    replay,
)
from finsync.systems.revrec.errors import RevenueError
from finsync.systems.revrec.order import canonical, effective_date
from finsync.systems.revrec.progress import cumulative
from finsync.systems.revrec.schedule import obligation_span
from finsync.systems.revrec.timegrid import add_months, at_midnight, month_periods
from tests.unit.revrec.builders import START, booked, line, modified, ssp, usd
from tests.unit.revrec.test_properties import histories

CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _lines_to(state: RevenueContractState, obligation_id: str) -> dict[date, Decimal]:
    """Month end -> the schedule's lines summed up to it (R(t) of the module docstring)."""
    ob = state.obligation(obligation_id)
    lines = {li.period.end: li.amount.amount
             for li in obligation_schedule(state, obligation_id).lines}
    upto, found = Decimal(0), {}
    span = obligation_span(ob)
    for month in month_periods(span.start, span.end):
        upto += lines.get(month.end, Decimal(0))
        found[month.end] = upto
    return found


def _check_drift(state: RevenueContractState) -> None:
    for ob in state.obligations:
        span = obligation_span(ob)
        first = month_periods(span.start, span.end)[0].start
        assert cumulative(ob, state.granularity, at_midnight(first)) == 0, ob.obligation_id
        before_r, before_c = Decimal(0), Decimal(0)
        for end, rounded in _lines_to(state, ob.obligation_id).items():
            exact = cumulative(ob, state.granularity, at_midnight(end))
            assert abs(rounded - exact) <= HALF_CENT, (ob.obligation_id, end, rounded, exact)
            month = (rounded - before_r) - (exact - before_c)
            assert abs(month) <= CENT, (ob.obligation_id, end, month)
            before_r, before_c = rounded, exact



def in_date_order(history: tuple[ContractBooked, list[RevenueEvent]]
                  ) -> tuple[ContractBooked, list[RevenueEvent]]:
    """The sequencer's order: by date, same-day events as generated (stable sort)."""
    book, events = history
    versions = iter(sorted(effective_date(e) for e in events if isinstance(e, ContractModified)))
    redated = [_redated(e, next(versions)) if isinstance(e, ContractModified) else e
               for e in events]  # versions come in order, so their dates must too
    return book, sorted(redated, key=effective_date)


def _redated(event: ContractModified, on: date) -> ContractModified:
    return replace(event, amendment=replace(event.amendment, effective_date=on))


def _all_satisfied_after_the_modification() -> tuple[ContractBooked, list[RevenueEvent]]:
    """A falsifying history once found, in date order: v2 on 2 January removes ln0 and ln1
    (running to 3 January) and adds ln3, transferred on 2 January (25-13(a)); v3 changes
    nothing. The change of 1 on 2 January found only the removed lines open after v2 (SSP
    zero) and was refused; it goes to ln3, caught up at once
    (test_modification.test_a_change_after_a_modification_whose_contract_is_all_...)."""
    jan1, jan2, jan3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(4))
    patterns = {f"prod_{i}": RecognitionPattern.RATABLE for i in range(3)}
    patterns["prod_3"] = RecognitionPattern.POINT_IN_TIME
    ln3 = line("ln3", 1, "1.00", "prod_3", jan1, jan2)
    events: list[RevenueEvent] = [
        modified("evt_m2", jan2, ln3, version=2, facts=ModificationFacts(False, False),
                 ssps=ssps),
        modified("evt_m3", jan2, ln3, version=3, facts=ModificationFacts(False, False),
                 ssps=ssps),
        TransactionPriceChanged("evt_tp0", jan2, usd(1),
                                PriceChangeKind.VARIABLE_CONSIDERATION)]
    book = booked(line("ln0", 1, "1.00", "prod_0", jan1, jan3),
                  line("ln1", 1, "1.00", "prod_1", jan1, jan3), ssps=ssps, patterns=patterns)
    return book, events


def _delivered_before_its_service_starts() -> tuple[ContractBooked, list[RevenueEvent]]:
    """A falsifying history once found (CI): v2 on 1 January adds ln1, per unit, served from
    1 February; a unit of it is delivered on 2 January. Per-unit progress counts the unit
    when delivered, so January has revenue: the schedule once started at February and
    showed January's 1.00 there."""
    jan1, feb1 = date(2026, 1, 1), date(2026, 2, 1)
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(2))
    patterns = {f"prod_{i}": RecognitionPattern.PER_UNIT for i in range(2)}
    ln0 = line("ln0", 2, "1.00", "prod_0", jan1, date(2026, 3, 1))
    ln1 = line("ln1", 2, "1.00", "prod_1", feb1, date(2026, 4, 1))
    events: list[RevenueEvent] = [
        modified("evt_m2", jan1, ln0, ln1, version=2, facts=ModificationFacts(False, False),
                 ssps=ssps),
        UnitsDelivered("evt_d0", "ln1", date(2026, 1, 2), 1)]
    return booked(ln0, ssps=ssps, patterns=patterns), events


@SETTINGS
@given(histories().map(in_date_order))
@example(_all_satisfied_after_the_modification())
@example(_delivered_before_its_service_starts())
def test_cumulative_rounding_stays_within_half_a_minor_unit_of_exact(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    book, events = history
    state = book_contract(book)
    _check_drift(state)
    for event in events:
        state = apply_event(state, event)
        _check_drift(state)


@st.composite
def ratable_contracts(draw: st.DrawFn) -> ContractBooked:
    found: dict[str, ContractLine] = {}
    for index in range(draw(st.integers(1, 4))):
        start = START + timedelta(days=draw(st.integers(0, 300)))
        end = start + timedelta(days=draw(st.integers(1, 1100)))
        price = f"{draw(st.integers(0, 10**6))}.{draw(st.integers(0, 99)):02d}"
        found[f"ln{index}"] = line(f"ln{index}", draw(st.integers(1, 900)), price,
                                   f"prod_{index}", start, end)
    ssps = tuple(ssp(f"prod_{i}", str(draw(st.integers(1, 10**5)))) for i in range(4))
    return booked(*found.values(), ssps=ssps)


def _single_line_whose_ssp_rounds_to_zero() -> ContractBooked:
    """One day of a 2.00-a-year line: its price 2.00 x 1/365 is 0.01, its SSP 1 x 1/365 is
    0.00; the one obligation takes the whole price, it needs no SSP ratio (606-10-32-28)."""
    jan1 = date(2026, 1, 1)
    only = line("ln0", 1, "2.00", "prod_0", jan1, jan1 + timedelta(days=1))
    return booked(only, ssps=tuple(ssp(f"prod_{i}", "1") for i in range(4)))


@SETTINGS
@given(ratable_contracts())
@example(_single_line_whose_ssp_rounds_to_zero())
def test_cumulative_rounding_is_within_half_a_minor_unit_of_the_rational_exact(
        book: ContractBooked) -> None:
    state = book_contract(book)
    bound = Fraction(HALF_CENT) + Fraction(1, 10**15)
    for ob in state.obligations:
        steps = ob.current.basis.steps
        weighted_days = sum(s.quantity * s.span.days for s in steps)
        allocated = Fraction(ob.allocated_price.amount)
        for end, rounded in _lines_to(state, ob.obligation_id).items():
            done = sum(s.quantity * min(max((end - s.span.start).days, 0), s.span.days)
                       for s in steps)
            exact = allocated * done / weighted_days
            assert abs(Fraction(rounded) - exact) <= bound, (ob.obligation_id, end)


@st.composite
def billed_histories(draw: st.DrawFn) -> tuple[ContractBooked, list[RevenueEvent]]:
    """`histories` (modifications, price changes, deliveries, progress) with invoices and
    credit memos for the booked lines mixed in at random places and dates."""
    book, events = draw(histories())
    booked_lines = book.contract.lines
    mixed = list(events)
    for n in range(draw(st.integers(1, 4))):
        billed = draw(st.sampled_from(booked_lines))
        issued = START + timedelta(days=draw(st.integers(0, 500)))
        amount = usd(f"{draw(st.integers(1, 10**5))}.{draw(st.integers(0, 99)):02d}")
        invoice = _invoice(f"inv_{n}", billed, amount, issued)
        mixed.insert(draw(st.integers(0, len(mixed))), InvoiceRecorded(f"evt_inv{n}", invoice))
        if draw(st.booleans()):
            credit = Money.from_minor(draw(st.integers(1, amount.to_minor())), "USD")
            reason = draw(st.sampled_from(["billing_error", "sla_credit"]))
            memo = _memo(invoice, f"cm_{n}", reason, billed,
                         credit, issued + timedelta(days=draw(st.integers(0, 90))))
            mixed.insert(draw(st.integers(0, len(mixed))), CreditMemoApplied(f"evt_cm{n}", memo))
    return book, mixed


def _document_line(billed: ContractLine, amount: Money) -> DocumentLine:
    return DocumentLine(f"dl_{billed.line_id}", billed.product_id, billed.product_id,
                        billed.quantity, amount, usd("0"), billed.start_date,
                        billed.end_date, contract_line_id=billed.line_id)


def _invoice(invoice_id: str, billed: ContractLine, amount: Money, on: date) -> Invoice:
    return Invoice(invoice_id, invoice_id.upper(), "cus_t", "con_t", None, "le_us", "USD", on,
                   on, (_document_line(billed, amount),), amount, usd("0"), amount)


def _memo(invoice: Invoice, memo_id: str, reason: str, billed: ContractLine, amount: Money,
          on: date) -> CreditMemo:
    return CreditMemo(memo_id, memo_id.upper(), invoice.id, "cus_t", "le_us", "USD", on,
                      reason, (_document_line(billed, amount),), amount, usd("0"), amount)


def _issued(event: RevenueEvent) -> tuple[date, Money] | None:
    """What a document the test issued bills (+) or credits (-), and when."""
    if isinstance(event, InvoiceRecorded):
        return event.invoice.issue_date, event.invoice.subtotal
    if isinstance(event, CreditMemoApplied):
        return event.memo.issue_date, -event.memo.subtotal
    return None


def _recognised_before(state: RevenueContractState, day: date) -> Money:
    amounts = [li.amount for ob in state.obligations
               for li in obligation_schedule(state, ob.obligation_id).lines
               if li.period.end <= day]
    return sum(amounts, Money.zero("USD"))


def _replayed(history: tuple[ContractBooked, list[RevenueEvent]]
              ) -> tuple[RevenueContractState, list[tuple[date, Money]]]:
    """The state after every event the engine accepts, applied in the engine's canonical
    order (as the revenue service applies them, rebuilding when one arrives back-dated),
    and the documents it accepted."""
    book, events = history
    state = book_contract(book)
    documents: list[tuple[date, Money]] = []
    for event in canonical(events):
        try:
            state = apply_event(state, event)
        except RevenueError:
            continue  # a refused event (e.g. a credit below zero) leaves the state as it was
        issued = _issued(event)
        if issued is not None:
            documents.append(issued)
    return state, documents


def _check_balances(state: RevenueContractState, documents: list[tuple[date, Money]],
                    schedules_too: bool) -> None:
    zero = Money.zero("USD")
    for months in range(0, 62):
        day = add_months(date(2026, 1, 1), months)
        got = balances(state, day)
        billed = sum((amount for on, amount in documents if on < day), zero)
        assert got.billed == billed, day
        if schedules_too:
            assert got.recognised == _recognised_before(state, day), day
        assert billed - got.recognised == (got.deferred_revenue - got.contract_asset
                                           - got.unbilled_receivable), day
        assert min(got.deferred_revenue.amount, got.contract_asset.amount,
                   got.unbilled_receivable.amount) >= 0, got
        assert got.deferred_revenue.is_zero or (got.contract_asset + got.unbilled_receivable
                                                ).is_zero, got


@SETTINGS
@given(billed_histories().map(in_date_order))
def test_billed_less_recognised_is_the_contract_liability_less_the_contract_asset(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    state, documents = _replayed(history)
    _check_balances(state, documents, schedules_too=True)


@SETTINGS
@given(billed_histories())
def test_the_balance_identity_holds_whatever_order_events_come_in(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    state, documents = _replayed(history)
    _check_balances(state, documents, schedules_too=True)


def test_price_change_dated_before_an_applied_modification_keeps_schedule_and_balances_equal(
) -> None:
    # Found by the balance property over histories out of date order (minimal example):
    # ln0 runs 1-3 February; v2 on 2 February removes it (13(a), anchored on 2 February);
    # a variable-consideration change of 1.00 dated 1 January arrives after v2. Applied one
    # after the other in that order, the change copied v2's prospective segment, anchored
    # after it, and revenue went negative before the service started; the engine's result
    # is the canonical order's (the service rebuilds so when the change arrives).
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(2))
    ln0 = line("ln0", 1, "1.00", "prod_0", date(2026, 2, 1), date(2026, 2, 3))
    ln1 = line("ln1", 1, "1.00", "prod_1", date(2026, 1, 1), date(2026, 1, 2))
    state = replay(booked(ln0, ln1, ssps=ssps), [
        modified("evt_m2", date(2026, 2, 2), ln1, facts=ModificationFacts(False, False),
                 ssps=ssps),
        TransactionPriceChanged("evt_tp", date(2026, 1, 1), usd(1),
                                PriceChangeKind.VARIABLE_CONSIDERATION)])
    feb = date(2026, 2, 1)
    assert cumulative(state.obligation("ln0"), state.granularity, at_midnight(feb)) == 0
    assert balances(state, feb).recognised == _recognised_before(state, feb)


def test_catch_up_dated_before_the_version_it_follows_recognises_nothing_before_service(
) -> None:
    # Found by the balance property over histories out of date order (minimal example). By
    # day, each line priced for 1 day of a year: ln0 3 x 2.00 x 1/365 = 0.0164 -> 0.02 (1-2
    # January), ln2 1.00 x 1/365 = 0.0027 -> 0.00 (1-2 February); 0.02 allocated by SSP
    # (1,200 : 400) by largest remainder: 0.01 each. v2 on 2 February (ln0 down to 1 x 1.00)
    # is 13(a): both obligations get a prospective segment anchored on 2 February with base
    # 0.01. v3 is dated 1 January (its measurement date) but placed after v2 (versions
    # apply in order); it keeps ln0 alone, ln2 named not distinct: a 13(b) catch-up of ln2
    # on 1 January. The catch-up copied v2's segment (anchor 2 February, progress there 1),
    # so from 1 January ln2 recognised its whole 0.01, a month before its service day:
    # balances said 0.01 + 0.01 = 0.02 at 1 February, the schedule (ln2's first month is
    # February) 0.01. Continuing from the segment in force on 1 January (the booking's),
    # ln2 recognises 0.00 by 1 February and 0.01 on its service day; both say 0.01.
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(3))
    jan, feb = date(2026, 1, 1), date(2026, 2, 1)
    ln0 = line("ln0", 3, "2.00", "prod_0", jan, date(2026, 1, 2))
    ln2 = line("ln2", 1, "1.00", "prod_2", feb, date(2026, 2, 2))
    ln0_v2 = line("ln0", 1, "1.00", "prod_0", jan, date(2026, 1, 2))
    state = replay(booked(ln0, ln2, ssps=ssps), [
        modified("evt_m2", date(2026, 2, 2), ln2, ln0_v2,
                 facts=ModificationFacts(False, False), ssps=ssps),
        modified("evt_m3", jan, ln0_v2, version=3,
                 facts=ModificationFacts(False, False, frozenset({"ln2"})), ssps=ssps)])
    assert cumulative(state.obligation("ln2"), state.granularity, at_midnight(feb)) == 0
    assert balances(state, feb).recognised == _recognised_before(state, feb) == usd("0.01")
    assert balances(state, date(2026, 3, 1)).recognised == usd("0.02")
