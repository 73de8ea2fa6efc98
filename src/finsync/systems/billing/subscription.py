"""Subscriptions: creating one, registering its customer, and renewing its term.

Rules:
- A new subscription is version 1 of its contract; every line must sell a catalogue product
  in the contract's currency, which must be the customer's currency.
- Creating a subscription emits `ContractCreated` and, as Stripe does, invoices the first
  cycle of its in-advance lines at once (dated on the start date).
- The term length is the contract's whole months (or given); renewal repeats it.
- Renewal makes version n+1 for the next term from the renewal baseline: the lines as every
  amendment (and every downgrade deferred to renewal) left them, each at the quantity and
  price in force on the term's last day (a ramp's last step), without further ramp steps.
  Lines that ended during the term do not renew. A subscription set to cancel at term end
  does not renew. The clock renews auto-renewing subscriptions when the term ends.
- A renewal's amendment id is the command's `id` when it names one (a commercial renewal's
  quote id, so that the renewal is found by it and correlated to it), else derived from
  the contract and the new version (the clock's renewals); an id already used is refused.
  It may name a new unit price for renewed lines (`unit_prices`: a renewal priced with an
  uplift); the renewal baseline then carries those prices. A line it names must renew.
- A customer's tax master data is checked when it is registered: its country (and region)
  must make a tax address, its VAT id at most `TAX_ID_MAX_CHARS` characters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.errors import DomainError
from finsync.domain.events import ContractCreated, ContractRenewed
from finsync.domain.ids import derive_id
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing.advance import bill_next_span
from finsync.systems.billing.charge import terms_on
from finsync.systems.billing.cycle import add_months, months_between
from finsync.systems.billing.diff import contract_diff
from finsync.systems.billing.edit import check_contract
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    ContractStateError,
    DuplicateIdError,
    InvalidCommandError,
    UnknownLineError,
)
from finsync.systems.billing.event import contract_ref, emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import (
    BillingState,
    Subscription,
    SubscriptionStatus,
    VersionInForce,
)


@dataclass(frozen=True, slots=True)
class CreateSubscription:
    contract: SubscriptionContract
    correlation_id: str | None = None
    auto_renew: bool = True
    arrears_frequency: BillingFrequency | None = None
    term_months: int | None = None


@dataclass(frozen=True, slots=True)
class RenewSubscription:
    contract_id: str
    id: str | None = None
    unit_prices: tuple[tuple[str, Money], ...] = ()  # (line id, price for the new term)


RENEWAL_REASON = "renewal"  # the reason of the amendment a renewal makes (ContractAmendment)
TAX_ID_MAX_CHARS = 64


def register_customer(state: BillingState, customer: CustomerAccount) -> Outcome:
    """Add or replace a customer (billing reads its tax address and VAT id for tax, and its
    currency); malformed tax master data is refused here rather than holding invoices."""
    try:
        customer.tax_address()
    except DomainError as exc:
        raise InvalidCommandError(f"customer {customer.id}: {exc}") from exc
    tax_id = customer.tax_id
    if tax_id is not None and not (0 < len(tax_id) <= TAX_ID_MAX_CHARS
                                   and tax_id.strip() == tax_id):
        raise InvalidCommandError(f"customer {customer.id}: tax id must be 1 to "
                                  f"{TAX_ID_MAX_CHARS} characters without surrounding "
                                  "spaces (TAX_ID_MAX_CHARS)")
    others = tuple(c for c in state.customers if c.id != customer.id)
    return Outcome(replace(state, customers=(*others, customer)))


def create_subscription(state: BillingState, cmd: CreateSubscription) -> Outcome:
    contract = cmd.contract
    _check_new(state, cmd)
    term_months = cmd.term_months or months_between(contract.start_date, contract.end_date)
    if term_months is None or term_months <= 0:
        raise InvalidCommandError(f"{contract.id}: the term is not a whole number of months; "
                                  "give term_months")
    arrears = cmd.arrears_frequency or contract.billing_frequency
    correlation_id = cmd.correlation_id or contract.id
    sub = Subscription(
        contract, correlation_id, contract.cycle_anchor, term_months, cmd.auto_renew,
        arrears.months, SubscriptionStatus.ACTIVE, contract.start_date, None,
        contract.start_date, contract.lines, Money.zero(contract.currency),
        (VersionInForce(contract.start_date, contract),))
    created = emit(ContractCreated(contract), correlation_id)
    state = state.with_subscription(sub)
    return Outcome(state, (created,)).then(bill_next_span(state, sub))


def _check_new(state: BillingState, cmd: CreateSubscription) -> None:
    contract = cmd.contract
    if any(s.id == contract.id for s in state.subscriptions):
        raise DuplicateIdError(f"subscription contract {contract.id} already exists")
    if contract.version != 1:
        raise InvalidCommandError(f"{contract.id}: a new subscription is version 1, "
                                  f"not {contract.version}")
    customer = state.customer(contract.customer_id)
    if customer.currency != contract.currency:
        raise BillingCurrencyError(f"{contract.id} is in {contract.currency}, customer "
                                   f"{customer.id} is billed in {customer.currency}")
    check_contract(contract, state.config.catalog)


def renew_subscription(state: BillingState, cmd: RenewSubscription) -> Outcome:
    sub = state.subscription(cmd.contract_id)
    if sub.status is not SubscriptionStatus.ACTIVE:
        raise ContractStateError(f"{sub.id} is {sub.status.value}: it does not renew")
    old = sub.contract
    start, end = old.end_date, add_months(old.end_date, sub.term_months)
    last_day = old.end_date - timedelta(days=1)
    lines = _repriced(tuple(_renewed(line, last_day, start, end)
                            for line in sub.renewal_lines if line.end_date >= old.end_date),
                      cmd.unit_prices)
    new = replace(old, start_date=start, end_date=end, lines=lines, version=old.version + 1)
    check_contract(new, state.config.catalog)
    amendment_id = cmd.id or derive_id("amd", old.id, RENEWAL_REASON, str(new.version))
    if any(a.id == amendment_id for a in sub.amendments):
        raise DuplicateIdError(f"amendment {amendment_id} was already applied to {old.id}")
    amendment = ContractAmendment(amendment_id, old.id, new.version, start, RENEWAL_REASON,
                                  contract_diff(old, new), new)
    renewed = replace(sub, contract=new, correlation_id=amendment_id, renewal_lines=lines,
                      history=(*sub.history, VersionInForce(start, new)),
                      amendments=(*sub.amendments, amendment))
    emitted = emit(ContractRenewed(amendment), amendment_id, contract_ref(old))
    return Outcome(state.with_subscription(renewed), (emitted,))


def _repriced(lines: tuple[ContractLine, ...],
              unit_prices: tuple[tuple[str, Money], ...]) -> tuple[ContractLine, ...]:
    prices = dict(unit_prices)
    unknown = sorted(set(prices) - {line.line_id for line in lines})
    if unknown:
        raise UnknownLineError(f"the renewal has no line {', '.join(unknown)}")
    return tuple(replace(line, unit_price=prices.get(line.line_id, line.unit_price))
                 for line in lines)


def _renewed(line: ContractLine, last_day: date, start: date, end: date) -> ContractLine:
    quantity, unit_price = terms_on(line, last_day)
    return ContractLine(line.line_id, line.product_id, line.price_id, quantity, unit_price,
                        start, end)
