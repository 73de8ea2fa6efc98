"""Billing asks the tax engine for every invoice, holds the draft when it cannot answer,
and credits reverse exactly the tax of what they credit, per jurisdiction line."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from finsync.domain import codec
from finsync.domain.catalog import Price, PriceModel
from finsync.domain.events import (
    ContractCreated,
    InvoiceHeld,
    InvoiceIssued,
    InvoiceReleased,
)
from finsync.domain.invoice import CreditMemo, HeldInvoice
from finsync.domain.money import Money, total
from finsync.domain.party import CustomerAccount
from finsync.domain.tax import (
    TaxDetail,
    TaxDocumentKind,
    TaxRequest,
    TaxResult,
    TaxTreatment,
)
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo, issue_credit_memo
from finsync.systems.billing.draft import HeldDraft
from finsync.systems.billing.edit import RemoveSeats
from finsync.systems.billing.errors import (
    ContractStateError,
    HeldForTaxError,
    InvalidCommandError,
)
from finsync.systems.billing.handler import RegisterCustomer, RunClock, handle
from finsync.systems.billing.held import RetryHeldInvoices
from finsync.systems.billing.one_off import ChargeOneOff
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.pricing import PricePlan, TaxBehavior, Timing
from finsync.systems.billing.state import BillingConfig, BillingState
from finsync.systems.billing.subscription import CreateSubscription
from finsync.systems.billing.tax import TaxQuoter
from finsync.systems.billing.value import contract_value_in
from tests.taxkit import UNIT_RATES, RateQuoter, SplitQuoter
from tests.unit.billing.support import (
    ANNUAL,
    CUSTOMER,
    QUARTERLY,
    START,
    catalog,
    contract,
    invoices,
    seat_line,
    types,
    usd,
)

# A setup fee of 105.00, tax included.
SETUP = PricePlan(Price("price_setup", "prod_platform", PriceModel.FLAT, usd("105.00"), ANNUAL),
                  timing=Timing.ONE_OFF, tax_behavior=TaxBehavior.INCLUSIVE)


def state_with(quoter: TaxQuoter, customer: CustomerAccount = CUSTOMER) -> BillingState:
    base = catalog()
    config = BillingConfig(Catalog(base.products, (*base.plans, SETUP)), quoter)
    return handle(BillingState(config), RegisterCustomer(customer)).state


def subscribe(state: BillingState) -> Outcome:
    return handle(state, CreateSubscription(contract(seat_line()), correlation_id="order_1"))


class Answering:
    """A quoter that answers what it is told to, once per call."""

    def __init__(self, answer: TaxResult) -> None:
        self.answer = answer

    def quote(self, request: TaxRequest) -> TaxResult:
        return self.answer


def _held(outcome: Outcome) -> HeldInvoice:
    event = outcome.emitted[-1].event
    assert isinstance(event, InvoiceHeld)
    return event.held_invoice


# -- asking ---------------------------------------------------------------------------------
def test_invoice_asks_the_engine_with_the_customer_address_and_tax_code() -> None:
    quoter = RateQuoter(dict(UNIT_RATES))
    customer = replace(CUSTOMER, billing_region="NY", tax_id="US-123")
    [invoice] = invoices(subscribe(state_with(quoter, customer)).emitted)
    [request] = quoter.asked
    assert (request.document_id, request.kind, request.legal_entity) == (
        invoice.id, TaxDocumentKind.INVOICE, "le_us")
    assert (request.address.country, request.address.region, request.tax_id) == (
        "US", "NY", "US-123")
    assert request.on == START
    [line] = request.lines
    assert (line.tax_code, line.amount, line.tax_inclusive) == ("saas", usd("60000.00"), False)
    # 500 seats x 120.00 = 60000.00; 5 % = 3000.00 on one US jurisdiction line
    [document_line] = invoice.lines
    assert document_line.taxes == (TaxDetail("US", "vat", Decimal("0.05"), usd("60000.00"),
                                             usd("3000.00")),)
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        usd("60000.00"), usd("3000.00"), usd("63000.00"))


def test_an_answer_that_does_not_add_up_holds_the_invoice() -> None:
    bad = TaxResult("inv_other", ())
    outcome = subscribe(state_with(Answering(bad)))
    assert types(outcome.emitted) == [ContractCreated, InvoiceHeld]
    held = _held(outcome)
    assert (held.code, held.transient) == ("tax_answer_invalid", False)


# -- holding --------------------------------------------------------------------------------
def test_engine_down_holds_the_draft_unnumbered_and_the_subscription_moves_on() -> None:
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    outcome = subscribe(state_with(quoter))
    assert types(outcome.emitted) == [ContractCreated, InvoiceHeld]
    held = _held(outcome)
    assert (held.version, held.subtotal, held.code, held.transient, held.invoice_id) == (
        1, usd("60000.00"), "tax_unavailable", True, None)
    assert outcome.emitted[1].aggregate.version == 1
    state = outcome.state
    assert state.invoices == () and state.numbering.last == ()
    assert state.subscription("sub_1").billed_through == date(2026, 1, 1)
    assert [d.id for d in state.held] == [held.id]


def test_an_invalid_address_is_refused_at_registration() -> None:
    customer = replace(CUSTOMER, billing_region="new york")  # not an ISO 3166-2 code
    with pytest.raises(InvalidCommandError, match="region"):
        state_with(RateQuoter(dict(UNIT_RATES)), customer)
    with pytest.raises(InvalidCommandError, match="TAX_ID_MAX_CHARS"):
        state_with(RateQuoter(dict(UNIT_RATES)), replace(CUSTOMER, tax_id="x" * 65))


def test_an_invalid_address_stored_before_is_a_refusal_not_a_crash() -> None:
    customer = replace(CUSTOMER, billing_region="new york")  # registered before the check
    state = state_with(RateQuoter(dict(UNIT_RATES)))
    outcome = subscribe(replace(state, customers=(customer,)))
    held = _held(outcome)
    assert (held.code, held.transient) == ("invalid_address", False)


def test_retry_with_the_same_cause_says_nothing_with_another_a_new_version() -> None:
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    state = subscribe(state_with(quoter)).state
    assert handle(state, RetryHeldInvoices()).emitted == ()
    quoter.down, quoter.rates = False, {}  # back, but it knows no US rate any more
    again = handle(state, RetryHeldInvoices())
    [event] = again.emitted
    assert isinstance(event.event, InvoiceHeld)
    assert (event.event.held_invoice.version, event.event.held_invoice.code,
            event.event.held_invoice.transient) == (2, "unknown_jurisdiction", False)
    assert event.causation is not None and event.causation.version == 1


def test_release_issues_with_the_next_number_then_nothing_more() -> None:
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    held = subscribe(state_with(quoter))
    draft_id = held.state.held[0].id
    quoter.down = False
    released = handle(held.state, RetryHeldInvoices(draft_id))
    assert types(released.emitted) == [InvoiceReleased, InvoiceIssued]
    release, issued = released.emitted[0].event, released.emitted[1].event
    assert isinstance(release, InvoiceReleased) and isinstance(issued, InvoiceIssued)
    invoice = issued.invoice
    assert release.held_invoice.version == 2 and release.held_invoice.invoice_id == invoice.id
    assert (invoice.number, invoice.issue_date, invoice.total) == (
        "INV-le_us-000001", START, usd("63000.00"))
    assert released.emitted[1].correlation_id == "order_1"
    assert handle(released.state, RetryHeldInvoices(draft_id)).emitted == ()
    assert handle(released.state, RetryHeldInvoices()).emitted == ()


def test_numbers_stay_gapless_when_a_later_invoice_issues_before_the_held_one() -> None:
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    state = subscribe(state_with(quoter)).state
    quoter.down = False
    one_off = handle(state, ChargeOneOff("chg_1", "sub_1", "price_setup", 1, date(2025, 2, 1)))
    [first] = invoices(one_off.emitted)
    [second] = invoices(handle(one_off.state, RetryHeldInvoices()).emitted)
    assert (first.number, second.number) == ("INV-le_us-000001", "INV-le_us-000002")


def test_the_clock_retries_held_drafts_before_billing_what_is_due() -> None:
    # quarterly: the first cycle is held; the run to 1 April releases it, then bills Q2
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    command = CreateSubscription(contract(seat_line(), frequency=QUARTERLY),
                                 correlation_id="order_1")
    state = handle(state_with(quoter), command).state
    quoter.down = False
    run = handle(state, RunClock(date(2025, 4, 1)))
    assert types(run.emitted) == [InvoiceReleased, InvoiceIssued, InvoiceIssued]
    numbers = [(i.number, i.issue_date) for i in invoices(run.emitted)]
    assert numbers == [("INV-le_us-000001", START), ("INV-le_us-000002", date(2025, 4, 1))]


# -- one-off, tax included ------------------------------------------------------------------
def test_inclusive_one_off_charge_splits_the_price_into_net_and_tax() -> None:
    # 105.00 tax included at 5 %: net = 105.00 / 1.05 = 100.00, tax 5.00
    state = subscribe(state_with(RateQuoter(dict(UNIT_RATES)))).state
    charge = ChargeOneOff("chg_1", "sub_1", "price_setup", 1, date(2025, 2, 1))
    charged = handle(state, charge)
    assert handle(charged.state, charge).emitted == ()  # retried: billed once
    [invoice] = invoices(charged.emitted)
    [line] = invoice.lines
    assert (line.amount, line.tax_amount, invoice.total) == (
        usd("100.00"), usd("5.00"), usd("105.00"))
    assert (line.service_start, line.service_end) == (date(2025, 2, 1), date(2025, 2, 2))


def test_one_off_charge_refuses_a_subscription_price_and_a_date_off_term() -> None:
    state = subscribe(state_with(RateQuoter(dict(UNIT_RATES)))).state
    with pytest.raises(InvalidCommandError, match="not a one-off"):
        handle(state, ChargeOneOff("chg_1", "sub_1", "price_seat", 1, date(2025, 2, 1)))
    with pytest.raises(ContractStateError):
        handle(state, ChargeOneOff("chg_1", "sub_1", "price_setup", 1, date(2026, 2, 1)))


# -- credits, per jurisdiction line ---------------------------------------------------------
def _split_invoice() -> tuple[BillingState, str]:
    outcome = subscribe(state_with(SplitQuoter()))
    [invoice] = invoices(outcome.emitted)
    return outcome.state, invoice.id


def _credit(state: BillingState, invoice_id: str, amount: str | None) -> Outcome:
    money = None if amount is None else usd(amount)
    return issue_credit_memo(state, IssueCreditMemo(invoice_id, CreditReason.GOODWILL,
                                                    date(2025, 3, 1), money))


def _memo(outcome: Outcome) -> CreditMemo:
    [event] = outcome.emitted
    assert isinstance(event.event.document, CreditMemo)
    return event.event.document


def test_full_credit_reverses_each_jurisdiction_line_exactly() -> None:
    # 60000.00: state 4 % = 2400.00, city 4.5 % = 2700.00, tax 5100.00
    state, invoice_id = _split_invoice()
    [line] = state.invoice_record(invoice_id).invoice.lines
    [memo_line] = _memo(_credit(state, invoice_id, None)).lines
    assert memo_line.tax_amount == usd("5100.00")
    assert memo_line.taxes == line.taxes


def test_partial_credits_sum_to_the_line_tax_per_jurisdiction() -> None:
    # credits of 333.33, 0.01 and the rest (59666.66); each one's tax is the line's share,
    # split over state and city by what is left of each, the last one takes what is left.
    #   333.33: tax 5100 x 333.33/60000 = 28.33305 -> 28.33; state 2400/5100 x 28.33 =
    #   13.3317..., city 14.9982... -> 13.33 + 15.00 by largest remainder
    state, invoice_id = _split_invoice()
    memos = []
    for amount in ("333.33", "0.01", None):
        outcome = _credit(state, invoice_id, amount)
        memos.append(_memo(outcome))
        state = outcome.state
    first = memos[0].lines[0]
    assert first.tax_amount == usd("28.33")
    assert [d.amount for d in first.taxes] == [usd("13.33"), usd("15.00")]
    [line] = state.invoice_record(invoice_id).invoice.lines
    for k, detail in enumerate(line.taxes):
        credited = total([m.lines[0].taxes[k].amount for m in memos], "USD")
        assert credited == detail.amount
        assert total([m.lines[0].taxes[k].taxable for m in memos], "USD") == detail.taxable
    assert all(d.treatment is TaxTreatment.TAXABLE for m in memos for d in m.lines[0].taxes)


def test_not_taxable_lines_credit_a_zero_jurisdiction_line_with_its_reason() -> None:
    quoter = RateQuoter({("US", "saas"): Decimal(0)})
    outcome = subscribe(state_with(quoter))
    [invoice] = invoices(outcome.emitted)
    [memo_line] = _memo(_credit(outcome.state, invoice.id, "100.00")).lines
    [detail] = memo_line.taxes
    assert (detail.jurisdiction, detail.amount, detail.treatment) == (
        "US", Money.zero("USD"), TaxTreatment.NOT_TAXABLE)


# -- what a held draft is worth, and how it is kept -----------------------------------------
def test_a_held_draft_counts_in_the_contract_value_as_billed() -> None:
    # the contract is worth 60000.00 whether its invoice issued or waits for its tax
    issued = subscribe(state_with(RateQuoter(dict(UNIT_RATES)))).state
    held = subscribe(state_with(RateQuoter(dict(UNIT_RATES), down=True))).state
    assert contract_value_in(held, "sub_1") == contract_value_in(issued, "sub_1") == usd(
        "60000.00")


def test_a_held_draft_reads_back_as_written() -> None:
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    state = subscribe(state_with(quoter)).state
    state = handle(state, ChargeOneOff("chg_1", "sub_1", "price_setup", 2,
                                       date(2025, 2, 1))).state
    assert len(state.held) == 2
    for draft in state.held:
        assert codec.decode(HeldDraft, codec.encode(draft), "held") == draft


def test_a_downgrade_of_a_span_held_for_tax_waits_for_its_release() -> None:
    # the annual invoice is held: a downgrade credit taken from issued invoices alone
    # would credit nothing, and the draft would later release at 500 seats
    quoter = RateQuoter(dict(UNIT_RATES), down=True)
    state = subscribe(state_with(quoter)).state
    downgrade = AmendSubscription("amd_1", "sub_1", date(2025, 7, 2),
                                  (RemoveSeats("ln_seats", 100),))
    with pytest.raises(HeldForTaxError, match="retry-held"):
        handle(state, downgrade)
    quoter.down = False
    released = handle(state, RetryHeldInvoices()).state
    credited = handle(released, downgrade)
    assert [type(e.event).__name__ for e in credited.emitted] == [
        "ContractAmended", "CreditMemoIssued"]
