"""What happens to which customer, and when: a company's business, planned from a seed.

Rules:
- Pure: the plan is a function of (seed, customers, months, start, entities) and nothing
  else; the same arguments give the same plan, so the same books (`driver` executes it).
- Each customer belongs to one legal entity and is billed in that entity's functional
  currency (`Market`): USD customers in the US (no tax) or the UK (20 %), EUR customers in
  Germany (19 %).
- A customer starts on a day 1..28 of some month of the horizon (most in the first month,
  the rest join as the company grows), on a 12- or 6-month auto-renewing term (a 6-month
  term renews inside a year), billed monthly, quarterly or annually.
- Plans are a mix of per-seat, per-seat + usage overage, per-seat + a flat module + usage,
  and flat + usage. The default catalogue prices seats in USD and EUR and the flat module
  and usage in USD only, so EUR customers are on seats.
- Every customer on a usage plan reports usage once a month while the term runs, around
  the included volume (so some months bill overage and some do not).
- Changes happen on days 2..28 of a month after the start month, never on a term's first
  day: upgrades, downgrades (never below one seat), a co-terminated add-on (once), SLA
  credits (some refunded in cash a few days later), and at most one cancellation, after
  which nothing else happens to the customer.
- How a customer pays (`Payer`) is planned per customer; when each invoice is paid is
  planned per invoice by `payments`, from the seed and the invoice id, since invoice ids
  exist only once billing issued them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TypeVar

from finsync.domain.catalog import BillingFrequency
from finsync.domain.money import Money
from finsync.systems.billing.cycle import add_months

T = TypeVar("T")
INCLUDED_CALLS = 1_000_000  # the usage price's included volume per month (default catalogue)


class Payer(StrEnum):
    ON_TIME = "on_time"  # within the payment terms
    LATE = "late"  # two to eight weeks after the due date
    PARTIAL = "partial"  # half at the due date, the rest a month later
    UNPAID = "unpaid"  # never pays


class Bundle(StrEnum):
    SEATS = "seats"
    SEATS_USAGE = "seats_usage"
    PLATFORM = "platform"  # seats + the flat analytics module + usage
    FLAT_USAGE = "flat_usage"  # the flat module + usage, no seats


class Change(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    ADD_ON = "add_on"
    SLA_CREDIT = "sla_credit"
    REFUND = "refund"  # the last SLA credit paid out in cash
    CANCEL_NOW = "cancel_now"
    CANCEL_AT_TERM_END = "cancel_at_term_end"
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class Market:
    """Where a customer is: its legal entity, currency and billing country."""

    legal_entity: str
    currency: str
    country: str


@dataclass(frozen=True, slots=True)
class CustomerPlan:
    n: int
    market: Market
    start: date
    term_months: int
    frequency: BillingFrequency
    bundle: Bundle
    seats: int
    payer: Payer

    @property
    def id(self) -> str:
        return f"cus_{self.n:06d}"

    @property
    def contract_id(self) -> str:
        return f"con_{self.n:06d}"

    @property
    def has_seats(self) -> bool:
        return self.bundle is not Bundle.FLAT_USAGE

    @property
    def has_usage(self) -> bool:
        return self.bundle is not Bundle.SEATS

    @property
    def has_module(self) -> bool:
        return self.bundle in (Bundle.PLATFORM, Bundle.FLAT_USAGE)


@dataclass(frozen=True, slots=True)
class Step:
    """One planned change: `quantity` is seats for up/downgrades, API calls for usage, the
    percentage of the invoice credited for an SLA credit, else 0."""

    on: date
    customer: int
    change: Change
    quantity: int = 0

    @property
    def id(self) -> str:
        return f"{self.change.value}_{self.customer:06d}_{self.on:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class CompanyPlan:
    seed: int
    start: date
    end: date
    customers: tuple[CustomerPlan, ...]
    steps: tuple[Step, ...]  # in date order, then customer, then as planned


# Chances per customer and month (after the start month) of each change.
_MONTHLY_CHANCE = ((Change.UPGRADE, 0.05), (Change.DOWNGRADE, 0.025), (Change.ADD_ON, 0.03),
                   (Change.SLA_CREDIT, 0.03), (Change.CANCEL_NOW, 0.008),
                   (Change.CANCEL_AT_TERM_END, 0.012))
_REFUND_SHARE = 0.5  # of SLA credits, paid out in cash
_PAYERS = ((Payer.ON_TIME, 0.70), (Payer.LATE, 0.15), (Payer.PARTIAL, 0.10),
           (Payer.UNPAID, 0.05))
_FREQUENCIES = ((BillingFrequency.MONTHLY, 0.5), (BillingFrequency.QUARTERLY, 0.15),
                (BillingFrequency.ANNUAL, 0.35))
_BUNDLES_USD = ((Bundle.SEATS, 0.3), (Bundle.SEATS_USAGE, 0.35), (Bundle.PLATFORM, 0.25),
                (Bundle.FLAT_USAGE, 0.1))
_FIRST_MONTH_SHARE = 0.6  # of customers already there when the horizon starts
_EUR_SHARE = 0.3
_UK_SHARE = 0.15  # of USD customers


def markets(entities: Sequence[tuple[str, str]]) -> tuple[Market, Market, Market]:
    """(US, UK, EU) markets from the configured entities' (id, functional currency): the
    first USD entity bills the US and the UK, the first EUR entity Germany."""
    usd = next((e for e, c in entities if c == "USD"), None)
    eur = next((e for e, c in entities if c == "EUR"), None)
    if usd is None or eur is None:
        raise ValueError("the generator needs a USD and a EUR legal entity in [ledger]")
    return Market(usd, "USD", "US"), Market(usd, "USD", "GB"), Market(eur, "EUR", "DE")


def plan_company(seed: int, customers: int, months: int, start: date,
                 entities: Sequence[tuple[str, str]]) -> CompanyPlan:
    if customers < 1 or months < 1:
        raise ValueError("customers and months must be at least 1")
    end = add_months(start, months)
    us, uk, eu = markets(entities)
    people: list[CustomerPlan] = []
    steps: list[Step] = []
    for n in range(customers):
        rng = random.Random(f"{seed}:customer:{n}")
        market = eu if rng.random() < _EUR_SHARE else uk if rng.random() < _UK_SHARE else us
        customer = _customer(rng, n, market, start, months)
        people.append(customer)
        steps.extend(_lifecycle(rng, customer, end))
    steps.sort(key=lambda s: (s.on, s.customer))
    return CompanyPlan(seed, start, end, tuple(people), tuple(steps))


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    values = [v for v, _ in weighted]
    return rng.choices(values, weights=[w for _, w in weighted])[0]


def _customer(rng: random.Random, n: int, market: Market, start: date,
              months: int) -> CustomerPlan:
    month = 0 if rng.random() < _FIRST_MONTH_SHARE or months == 1 else rng.randrange(months)
    first = add_months(start, month)
    day = first if month == 0 else first.replace(day=rng.randint(1, 28))
    bundle = Bundle.SEATS if market.currency != "USD" else _pick(rng, _BUNDLES_USD)
    seats = int(rng.lognormvariate(3.0, 0.9)) + 1  # a long tail: most small, a few large
    return CustomerPlan(n, market, day, 6 if rng.random() < 0.25 else 12,
                        _pick(rng, _FREQUENCIES), bundle, min(seats, 2_000),
                        _pick(rng, _PAYERS))


def term_starts(customer: CustomerPlan, end: date) -> set[date]:
    """Every day a term of the customer starts on before `end`."""
    starts, k = set(), 0
    while (day := add_months(customer.start, k * customer.term_months)) < end:
        starts.add(day)
        k += 1
    return starts


def _lifecycle(rng: random.Random, customer: CustomerPlan, end: date) -> list[Step]:
    steps: list[Step] = []
    seats, module, cancelled = customer.seats, customer.has_module, False
    renewals = term_starts(customer, end)
    month_start = customer.start.replace(day=1)
    ends = end
    while month_start < ends:
        if customer.has_usage:
            day = _day_in(rng, month_start, customer.start, ends)
            if day is not None:
                calls = int(INCLUDED_CALLS * rng.uniform(0.4, 2.6))
                steps.append(Step(day, customer.n, Change.USAGE, calls))
        if month_start > customer.start and not cancelled:
            for change, chance in _MONTHLY_CHANCE:
                if rng.random() >= chance:
                    continue
                day = _change_day(rng, month_start, renewals, ends)
                if day is None:
                    continue
                step = _change(rng, customer, change, day, seats, module)
                if step is None:
                    continue
                steps.append(step)
                if change is Change.UPGRADE:
                    seats += step.quantity
                elif change is Change.DOWNGRADE:
                    seats -= step.quantity
                elif change is Change.ADD_ON:
                    module = True
                elif change is Change.SLA_CREDIT and rng.random() < _REFUND_SHARE:
                    steps.append(Step(day + timedelta(days=rng.randint(3, 10)),
                                      customer.n, Change.REFUND))
                elif change in (Change.CANCEL_NOW, Change.CANCEL_AT_TERM_END):
                    ends = _cancelled_end(change, day, renewals, end)
                    cancelled = True
                    break
        month_start = add_months(month_start, 1)
    return [s for s in steps if s.on < ends]


def _cancelled_end(change: Change, day: date, renewals: set[date], end: date) -> date:
    """After an immediate cancellation nothing happens; after one at term end, only until
    the term ends."""
    if change is Change.CANCEL_NOW:
        return day + timedelta(days=1)
    later = sorted(d for d in renewals if d > day)
    return min(later[0], end) if later else end


def _change(rng: random.Random, customer: CustomerPlan, change: Change, day: date, seats: int,
            module: bool) -> Step | None:
    if change is Change.UPGRADE and customer.has_seats:
        return Step(day, customer.n, change, max(1, seats // rng.randint(3, 8)))
    if change is Change.DOWNGRADE and customer.has_seats and seats > 1:
        return Step(day, customer.n, change, max(1, min(seats - 1, seats // rng.randint(4, 10))))
    if change is Change.ADD_ON and not module and customer.market.currency == "USD":
        return Step(day, customer.n, change, 1)
    if change is Change.SLA_CREDIT:
        return Step(day, customer.n, change, rng.randint(5, 15))
    if change in (Change.CANCEL_NOW, Change.CANCEL_AT_TERM_END):
        return Step(day, customer.n, change)
    return None


def _day_in(rng: random.Random, month_start: date, after: date, before: date) -> date | None:
    """A day 1..28 of the month, on or after `after` and before `before`, if any."""
    days = [d for d in range(1, 29)
            if after <= month_start.replace(day=d) < before]
    return month_start.replace(day=rng.choice(days)) if days else None


def _change_day(rng: random.Random, month_start: date, renewals: set[date],
                before: date) -> date | None:
    days = [month_start.replace(day=d) for d in range(2, 29)]
    days = [d for d in days if d not in renewals and d < before]
    return rng.choice(days) if days else None


@dataclass(frozen=True, slots=True)
class Instalment:
    on: date
    amount: Money | None  # None: whatever is still due that day


def payments(seed: int, payer: Payer, invoice_id: str, issue_date: date, due_date: date,
             total: Money) -> tuple[Instalment, ...]:
    """When and how much of one invoice the customer pays (nothing for a zero invoice)."""
    if total.amount <= 0 or payer is Payer.UNPAID:
        return ()
    rng = random.Random(f"{seed}:invoice:{invoice_id}")
    terms_days = max(0, (due_date - issue_date).days)
    if payer is Payer.ON_TIME:
        return (Instalment(issue_date + timedelta(days=rng.randint(0, terms_days)), None),)
    if payer is Payer.LATE:
        return (Instalment(due_date + timedelta(days=rng.randint(14, 56)), None),)
    half = Money(total.amount / 2, total.currency).quantize()
    first = Instalment(due_date, half if half.amount > 0 else None)
    return (first, Instalment(due_date + timedelta(days=rng.randint(25, 35)), None))
