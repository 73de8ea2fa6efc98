"""Hypothesis strategies for valid canonical documents and events, one per catalogue class.

Rules:
- Every strategy builds what the domain accepts (its `__post_init__` checks): documents add
  up (lines to subtotal, subtotal + tax to total), money is at its currency's minor units
  (USD 2, JPY 0, KWD 3), journal entries balance per currency, versions and dates are in
  order. A strategy that needs a `filter` to get there is a strategy written wrong.
- Strings are non-empty (the codec refuses empty strings); any other text is fair game.
- An amount may be spelt without its trailing zeros or in exponent form (`1E+2` USD is
  100.00 USD): the same money, so the codec must carry it all the same.
- `EVENTS` gives the strategy of every class in `CATALOGUE`; a class without one fails
  `test_codec_roundtrip`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import strategies as st

from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    CommercialRampStep,
    ProrationTerms,
)
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    RampStep,
    SubscriptionContract,
)
from finsync.domain.dispute import (
    Dispute,
    DisputeClosure,
    DisputeFunds,
    DisputeOutcome,
    DisputeStep,
)
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import (
    AnyEvent,
    CommercialContractApproved,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    CreditMemoIssued,
    CustomerUpserted,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    DisputeOpened,
    InvoiceHeld,
    InvoiceIssued,
    InvoiceReleased,
    JournalEntrySummarised,
    PaymentApplied,
    PaymentDeclined,
    RefundIssued,
    RevenueJournalRecorded,
    UsageRated,
    UsageRecorded,
)
from finsync.domain.invoice import (
    CreditMemo,
    DeliveredPart,
    DocumentLine,
    HeldInvoice,
    Invoice,
    RatedUsage,
    UsageRecord,
)
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money, total
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.payment import Payment, PaymentApplication, PaymentAttempt, Refund
from finsync.domain.proration import ProrationConvention
from finsync.domain.refs import ExternalRefs
from finsync.domain.tax import TaxDetail, TaxTreatment

# One currency per minor-unit exponent: USD 2, JPY 0, KWD 3.
CURRENCIES = ("USD", "JPY", "KWD")
AMOUNT_MINOR_MAX = 10**12
TERM_DAYS_MAX = 3650

texts = st.text(min_size=1, max_size=12)
optional_texts = st.none() | texts
days = st.dates(date(1970, 1, 1), date(2200, 12, 31))
currencies = st.sampled_from(CURRENCIES)
external_refs = st.dictionaries(texts, texts, max_size=3).map(ExternalRefs.of)
string_pairs = st.lists(st.tuples(texts, texts), max_size=2).map(tuple)


def later(draw: st.DrawFn, day: date, days_min: int = 1) -> date:
    """A day at least `days_min` after `day` (a period end after its start)."""
    return day + timedelta(days=draw(st.integers(days_min, TERM_DAYS_MAX)))


def spelt(draw: st.DrawFn, minor: int, currency: str) -> Money:
    """`minor` units of `currency`, sometimes spelt without trailing zeros (`1E+2`)."""
    amount = Money.from_minor(minor, currency)
    if draw(st.integers(0, 3)) == 0:
        return Money(amount.amount.normalize(), currency)
    return amount


@st.composite
def money(draw: st.DrawFn, currency: str, minor_min: int = -AMOUNT_MINOR_MAX,
          minor_max: int = AMOUNT_MINOR_MAX) -> Money:
    """An amount at the currency's minor units."""
    return spelt(draw, draw(st.integers(minor_min, minor_max)), currency)


@st.composite
def unit_prices(draw: st.DrawFn, currency: str) -> Money:
    """A contract unit price: minor units, an annual price restated for a quarter of days
    (28 significant digits, as billing makes it), or any exact decimal up to 28 digits."""
    how = draw(st.integers(0, 2))
    if how == 0:
        return draw(money(currency, 0, AMOUNT_MINOR_MAX))
    if how == 1:
        annual = Money.from_minor(draw(st.integers(1, AMOUNT_MINOR_MAX)), currency).amount
        days_in_quarter = Decimal(draw(st.integers(89, 92)))
        days_in_year = Decimal(draw(st.sampled_from((365, 366))))
        return Money(annual * days_in_quarter / days_in_year, currency)
    digits = Decimal(draw(st.integers(0, 10**28 - 1)))
    return Money(digits.scaleb(-draw(st.integers(0, 28))), currency)


# -- customers ------------------------------------------------------------------------------

@st.composite
def addresses(draw: st.DrawFn) -> PostalAddress:
    return PostalAddress(tuple(draw(st.lists(texts, max_size=3))), draw(texts),
                         draw(optional_texts))


@st.composite
def customers(draw: st.DrawFn) -> CustomerAccount:
    return CustomerAccount(draw(texts), draw(texts), draw(texts), draw(currencies), draw(texts),
                           draw(st.integers(1, 10**6)), draw(external_refs),
                           draw(optional_texts), draw(optional_texts),
                           draw(st.none() | addresses()))


# -- the commercial layer -------------------------------------------------------------------

@st.composite
def commercial_lines(draw: st.DrawFn, currency: str, start: date,
                     end: date) -> CommercialLine:
    line_start = draw(st.dates(start, end - timedelta(days=1)))
    line_end = draw(st.dates(line_start + timedelta(days=1), end))
    step_days = sorted(set(draw(st.lists(st.dates(line_start, line_end - timedelta(days=1)),
                                         max_size=3))))
    ramp = tuple(CommercialRampStep(d, draw(st.integers(0, 10**6)),
                                    draw(money(currency, 0))) for d in step_days)
    discount = Decimal(draw(st.integers(0, 9999))).scaleb(-2)
    return CommercialLine(draw(texts), draw(texts), draw(st.integers(0, 10**6)),
                          draw(money(currency, 0)), discount, draw(money(currency, 0)),
                          line_start, line_end, ramp)


@st.composite
def commercial_contracts(draw: st.DrawFn) -> CommercialContract:
    """Any version of a commercial contract: version 1 is new, later ones change it."""
    version = draw(st.integers(1, 10**6))
    kinds = [k for k in CommercialKind if (k is CommercialKind.NEW) == (version == 1)]
    currency = draw(currencies)
    start = draw(days)
    end = later(draw, start)
    lines = draw(st.lists(commercial_lines(currency, start, end), max_size=3,
                          unique_by=lambda line: line.line_id))
    uplift = Decimal(draw(st.integers(0, 10000))).scaleb(-2)
    return CommercialContract(draw(texts), version, draw(st.sampled_from(kinds)), draw(texts),
                              draw(texts), draw(texts), draw(texts), currency, start, end,
                              draw(st.dates(start, end)),
                              draw(st.sampled_from(BillingFrequency)), tuple(lines),
                              draw(st.sampled_from(ProrationTerms)), uplift,
                              draw(st.booleans()), draw(external_refs))


# -- contracts ------------------------------------------------------------------------------

@st.composite
def ramp_steps(draw: st.DrawFn, currency: str, start: date) -> RampStep:
    return RampStep(later(draw, start), draw(st.integers(0, 10**6)),
                    draw(unit_prices(currency)))


@st.composite
def contract_lines(draw: st.DrawFn, currency: str, contract_start: date) -> ContractLine:
    start = later(draw, contract_start, 0)
    ramp = draw(st.lists(ramp_steps(currency, start), max_size=3))
    return ContractLine(draw(texts), draw(texts), draw(texts), draw(st.integers(0, 10**6)),
                        draw(unit_prices(currency)), start, later(draw, start),
                        tuple(sorted(ramp, key=lambda step: step.starts_on)))


@st.composite
def contracts(draw: st.DrawFn, version: int = 1) -> SubscriptionContract:
    currency = draw(currencies)
    start = draw(days)
    lines = draw(st.lists(contract_lines(currency, start), max_size=3))
    end = later(draw, start)
    anchor = draw(st.none() | st.dates(start, end))
    return SubscriptionContract(draw(texts), draw(texts), draw(texts), currency, start,
                                end, draw(st.sampled_from(BillingFrequency)),
                                tuple(lines), version, draw(external_refs), anchor,
                                draw(st.sampled_from(ProrationConvention)))


@st.composite
def contract_changes(draw: st.DrawFn, op: ChangeOp | None = None) -> ContractChange:
    """A change of any op (or `op`); only `attribute_changed` names an attribute."""
    chosen = draw(st.sampled_from(ChangeOp)) if op is None else op
    attribute = draw(texts) if chosen is ChangeOp.ATTRIBUTE_CHANGED else None
    return ContractChange(chosen, draw(st.just(CONTRACT_LEVEL) | texts), draw(optional_texts),
                          draw(optional_texts), attribute)


@st.composite
def amendments(draw: st.DrawFn) -> ContractAmendment:
    """Version n >= 2 of a contract, effective on or after the contract starts."""
    version = draw(st.integers(2, 10**6))
    contract = draw(contracts(version))
    changes = draw(st.lists(contract_changes(), max_size=4))
    return ContractAmendment(draw(texts), contract.id, version,
                             later(draw, contract.start_date, 0), draw(texts), tuple(changes),
                             contract)


# -- invoices, credit memos, usage ----------------------------------------------------------

@st.composite
def document_lines(draw: st.DrawFn, currency: str, amount_minor_min: int) -> DocumentLine:
    start = draw(days)
    amount = draw(money(currency, amount_minor_min))
    taxes = draw(st.lists(tax_details(currency), max_size=3))
    tax = total([t.amount for t in taxes], currency) if taxes else draw(money(currency, 0))
    return DocumentLine(draw(texts), draw(texts), draw(texts), draw(st.integers(0, 10**6)),
                        amount, tax, start, later(draw, start, 0),
                        draw(st.booleans()), draw(optional_texts),
                        draw(st.none() | delivered_parts(amount)), tuple(taxes))


JURISDICTIONS = st.sampled_from(["DE", "GB", "US-NY", "US-TX", "US-NY-NYC", "FR"])


@st.composite
def tax_details(draw: st.DrawFn, currency: str) -> TaxDetail:
    """A jurisdiction line; only a taxable one carries tax."""
    treatment = draw(st.sampled_from(TaxTreatment))
    taxed = treatment is TaxTreatment.TAXABLE
    amount = draw(money(currency, 0)) if taxed else Money.zero(currency)
    rate = Decimal(draw(st.integers(0, 9999))) / 10000
    return TaxDetail(draw(JURISDICTIONS), draw(st.sampled_from(["vat", "sales_tax"])), rate,
                     draw(money(currency, 0)), amount, treatment)


@st.composite
def held_invoices(draw: st.DrawFn) -> HeldInvoice:
    currency = draw(currencies)
    issued = draw(days)
    return HeldInvoice(draw(texts), draw(st.integers(1, 10**6)), draw(texts),
                       draw(optional_texts), draw(texts), currency, issued,
                       draw(money(currency, 0)), draw(texts), draw(texts), draw(st.booleans()),
                       draw(optional_texts), draw(external_refs))


@st.composite
def delivered_parts(draw: st.DrawFn, whole: Money) -> DeliveredPart | None:
    """A part of a positive line that relates to what was already delivered."""
    if whole.to_minor() <= 0:
        return None
    minor = draw(st.integers(1, whole.to_minor()))
    return DeliveredPart(Money.from_minor(minor, whole.currency),
                         draw(st.none() | st.integers(1, 10**6)), draw(optional_texts))


def _sums(lines: list[DocumentLine], currency: str) -> tuple[Money, Money]:
    """The subtotal and the tax total of `lines`."""
    subtotal = total([line.amount for line in lines], currency)
    return subtotal, total([line.tax_amount for line in lines], currency)


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    """Lines may be discounts (negative); they add up to the subtotal, and so on."""
    currency = draw(currencies)
    lines = draw(st.lists(document_lines(currency, -AMOUNT_MINOR_MAX), max_size=4))
    subtotal, tax_total = _sums(lines, currency)
    contract_id = draw(optional_texts)
    contract_version = None if contract_id is None else draw(st.integers(1, 10**6))
    issued = draw(days)
    grand_total = subtotal + tax_total
    # Customer credit settled on issue: none, or up to a positive total.
    credit = draw(st.none() | st.integers(0, max(grand_total.to_minor(), 0)))
    return Invoice(draw(texts), draw(texts), draw(texts), contract_id, contract_version,
                   draw(texts), currency, issued, later(draw, issued, 0), tuple(lines),
                   subtotal, tax_total, grand_total, draw(external_refs),
                   None if credit is None else spelt(draw, credit, currency))


@st.composite
def credit_memos(draw: st.DrawFn) -> CreditMemo:
    """Positive lines; between none and all of the total set against the invoice."""
    currency = draw(currencies)
    lines = draw(st.lists(document_lines(currency, 0), max_size=4))
    subtotal, tax_total = _sums(lines, currency)
    grand_total = subtotal + tax_total
    applied = draw(st.none() | st.integers(0, grand_total.to_minor()))
    return CreditMemo(draw(texts), draw(texts), draw(texts), draw(texts), draw(texts), currency,
                      draw(days), draw(texts), tuple(lines), subtotal, tax_total, grand_total,
                      draw(external_refs),
                      None if applied is None else spelt(draw, applied, currency))


@st.composite
def usage_records(draw: st.DrawFn) -> UsageRecord:
    return UsageRecord(draw(texts), draw(texts), draw(texts), draw(st.integers(0, 10**9)),
                       draw(days))


@st.composite
def rated_usage(draw: st.DrawFn) -> RatedUsage:
    """Drawn from a prepayment plus invoiced is the amount; the period ends after it starts."""
    currency = draw(currencies)
    drawn = draw(money(currency, 0))
    invoiced = draw(money(currency, 0))
    start = draw(days)
    quantities = st.integers(0, 10**9)
    return RatedUsage(draw(texts), draw(texts), draw(texts), draw(texts), start,
                      later(draw, start), draw(quantities), draw(quantities), draw(quantities),
                      drawn + invoiced, drawn, invoiced, draw(optional_texts))


# -- payments -------------------------------------------------------------------------------

@st.composite
def payments(draw: st.DrawFn) -> Payment:
    """Applications, each of at least one minor unit, add up to no more than the payment."""
    currency = draw(currencies)
    amount_minor = draw(st.integers(1, AMOUNT_MINOR_MAX))
    left = amount_minor
    applications: list[PaymentApplication] = []
    for invoice_id in draw(st.lists(texts, max_size=3)):
        if left == 0:
            break
        applied = draw(st.integers(1, left))
        left -= applied
        applications.append(PaymentApplication(invoice_id, spelt(draw, applied, currency)))
    return Payment(draw(texts), draw(texts), draw(texts), spelt(draw, amount_minor, currency),
                   draw(days), tuple(applications), draw(external_refs))


@st.composite
def refunds(draw: st.DrawFn) -> Refund:
    """Positive; between none and all of it paid out of a customer credit."""
    currency = draw(currencies)
    amount_minor = draw(st.integers(1, AMOUNT_MINOR_MAX))
    from_credit = draw(st.none() | st.integers(0, amount_minor))
    return Refund(draw(texts), draw(texts), draw(texts), draw(texts),
                  spelt(draw, amount_minor, currency), draw(days), draw(texts),
                  draw(external_refs),
                  None if from_credit is None else spelt(draw, from_credit, currency),
                  draw(optional_texts))


# -- disputes -------------------------------------------------------------------------------

@st.composite
def disputes(draw: st.DrawFn) -> Dispute:
    currency = draw(currencies)
    return Dispute(draw(texts), draw(texts), draw(texts),
                   spelt(draw, draw(st.integers(1, AMOUNT_MINOR_MAX)), currency), draw(days),
                   draw(texts), draw(st.booleans()), draw(external_refs))


@st.composite
def dispute_funds(draw: st.DrawFn, withdrawn: bool) -> DisputeFunds:
    """Withdrawn: disputed money out (a fee charged or given back), or only a fee
    charged; reinstated: the reverse."""
    currency = draw(currencies)
    amount = draw(st.integers(0, AMOUNT_MINOR_MAX))
    fee = draw(st.integers(-AMOUNT_MINOR_MAX, AMOUNT_MINOR_MAX) if amount
               else st.integers(1, AMOUNT_MINOR_MAX))
    sign = -1 if withdrawn else 1
    return DisputeFunds(draw(texts), draw(texts), draw(texts), draw(texts),
                        spelt(draw, sign * amount, currency),
                        spelt(draw, fee if amount else -sign * fee, currency), draw(days),
                        draw(external_refs))


@st.composite
def dispute_closures(draw: st.DrawFn) -> DisputeClosure:
    """Steps in one currency; unrecovered is what they left."""
    currency = draw(currencies)
    steps = tuple(DisputeStep(draw(texts), draw(money(currency)), draw(days))
                  for _ in range(draw(st.integers(0, 3))))
    unrecovered = -total([step.amount for step in steps], currency)
    return DisputeClosure(draw(texts), draw(texts), draw(texts),
                          draw(st.sampled_from(DisputeOutcome)), unrecovered, draw(days),
                          steps, draw(external_refs))


@st.composite
def payment_attempts(draw: st.DrawFn) -> PaymentAttempt:
    """A declined attempt at a positive amount, for none or some invoices."""
    currency = draw(currencies)
    return PaymentAttempt(draw(texts), draw(texts), draw(texts), draw(texts),
                          spelt(draw, draw(st.integers(1, AMOUNT_MINOR_MAX)), currency),
                          draw(days), draw(texts), tuple(draw(st.lists(texts, max_size=3))),
                          draw(external_refs))


# -- journal entries ------------------------------------------------------------------------

@st.composite
def journal_lines(draw: st.DrawFn, side: Side, amount_minor: int,
                  currency: str) -> JournalLine:
    """A line in `currency`; some say what the document said in another currency."""
    moved = None
    if draw(st.booleans()):
        others = [c for c in CURRENCIES if c != currency]
        moved = draw(money(draw(st.sampled_from(others)), 1))
    return JournalLine(draw(texts), side, spelt(draw, amount_minor, currency),
                       draw(string_pairs), moved)


@st.composite
def balanced_lines(draw: st.DrawFn, currency: str) -> list[JournalLine]:
    """Debits in `currency`, and credits that split their sum at random cuts."""
    debits = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=3))
    whole = sum(debits)
    cuts = draw(st.lists(st.integers(1, max(1, whole - 1)), unique=True,
                         max_size=min(2, whole - 1)))
    credits = [b - a for a, b in pairwise([0, *sorted(cuts), whole])]
    found = [draw(journal_lines(Side.DEBIT, minor, currency)) for minor in debits]
    found += [draw(journal_lines(Side.CREDIT, minor, currency)) for minor in credits]
    return found


@st.composite
def journal_entries(draw: st.DrawFn) -> JournalEntry:
    """Balanced in each of one or two currencies, lines in any order."""
    lines: list[JournalLine] = []
    for currency in draw(st.lists(currencies, min_size=1, max_size=2, unique=True)):
        lines += draw(balanced_lines(currency))
    return JournalEntry(draw(texts), draw(texts), draw(days), draw(texts),
                        tuple(draw(st.permutations(lines))), draw(optional_texts),
                        draw(optional_texts), draw(string_pairs))


# -- events and envelopes -------------------------------------------------------------------

EVENTS: Mapping[type[AnyEvent], st.SearchStrategy[AnyEvent]] = {
    CustomerUpserted: customers().map(CustomerUpserted),
    CommercialContractApproved: commercial_contracts().map(CommercialContractApproved),
    ContractCreated: contracts().map(ContractCreated),
    ContractAmended: amendments().map(ContractAmended),
    ContractRenewed: amendments().map(ContractRenewed),
    ContractCancelled: amendments().map(ContractCancelled),
    InvoiceIssued: invoices().map(InvoiceIssued),
    CreditMemoIssued: credit_memos().map(CreditMemoIssued),
    PaymentApplied: payments().map(PaymentApplied),
    RefundIssued: refunds().map(RefundIssued),
    DisputeOpened: disputes().map(DisputeOpened),
    DisputeFundsWithdrawn: dispute_funds(withdrawn=True).map(DisputeFundsWithdrawn),
    DisputeFundsReinstated: dispute_funds(withdrawn=False).map(DisputeFundsReinstated),
    DisputeClosed: dispute_closures().map(DisputeClosed),
    UsageRecorded: usage_records().map(UsageRecorded),
    UsageRated: rated_usage().map(UsageRated),
    RevenueJournalRecorded: journal_entries().map(RevenueJournalRecorded),
    JournalEntrySummarised: journal_entries().map(JournalEntrySummarised),
    PaymentDeclined: payment_attempts().map(PaymentDeclined),
    InvoiceHeld: held_invoices().map(InvoiceHeld),
    InvoiceReleased: held_invoices().map(InvoiceReleased),
}


@st.composite
def drafts(draw: st.DrawFn, events: st.SearchStrategy[AnyEvent]) -> DraftEnvelope:
    """A source's envelope around an event: UTC, to the second or to the microsecond."""
    occurred_at = draw(st.datetimes(timezones=st.just(UTC)))
    if draw(st.booleans()):
        occurred_at = occurred_at.replace(microsecond=0)
    return DraftEnvelope(draw(events), draw(texts), draw(texts), occurred_at, draw(texts),
                         draw(optional_texts), draw(optional_texts))
