"""Billing commands read and lock only their own aggregate, on SQLite and PostgreSQL: a
customer's command never reads another customer's rows, numbers stay gapless across
customers, usage is de-duplicated by its key, a clock run reads only what is due, and the
one-pass balances equal `amount_due`."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select, update

from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import SubscriptionContract
from finsync.domain.invoice import UsageRecord
from finsync.domain.party import CustomerAccount
from finsync.systems.billing import tables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.balance import balances
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.errors import DuplicateIdError
from finsync.systems.billing.handler import RecordUsage, RegisterCustomer, RunClock
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import amount_due
from finsync.systems.billing.subscription import CreateSubscription
from tests.unit.billing.servicekit import END, START, overage, seats, service, snapshot, usd


def _customer(billing: BillingService, n: int,
              frequency: BillingFrequency = BillingFrequency.MONTHLY) -> str:
    """Customer `cus_<n>` with subscription `con_<n>` (seats + usage); its id."""
    billing.execute(RegisterCustomer(CustomerAccount(f"cus_{n}", f"Customer {n}", "le_us",
                                                     "USD", "US")))
    contract = SubscriptionContract(f"con_{n}", f"cus_{n}", "le_us", "USD", START, END,
                                    frequency, (seats(10 * n), overage()))
    billing.execute(CreateSubscription(contract, f"ord_{n}"))
    return contract.id


def _break_customer(engine: Engine, n: int) -> None:
    """Make every JSON row of customer n unreadable: reading it would fail."""
    with engine.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.id == f"cus_{n}")
                     .values(body="not json"))
        conn.execute(update(tables.invoices).where(tables.invoices.c.customer_id == f"cus_{n}")
                     .values(body="not json"))
        conn.execute(update(tables.contract_versions)
                     .where(tables.contract_versions.c.contract_id == f"con_{n}")
                     .values(contract="not json"))


def test_a_command_never_reads_another_customers_rows(engine: Engine) -> None:
    billing = service(engine)
    mine, _ = _customer(billing, 1), _customer(billing, 2)
    _break_customer(engine, 2)
    billing.execute(RecordUsage(UsageRecord("use_1", mine, "prod_usage_overage", 5,
                                            date(2026, 1, 9))))
    [first] = billing.invoices(customer_id="cus_1")
    billing.execute(PayInvoice("pay_1", first.id, first.total, date(2026, 1, 10)))
    billing.execute(AmendSubscription("amd_1", mine, date(2026, 1, 16),
                                      (AddSeats("ln_seats", 5),)))
    billing.execute(IssueCreditMemo(first.id, CreditReason.GOODWILL, date(2026, 1, 20),
                                    usd("1.00")))
    billing.execute(RunClock(date(2026, 1, 31)))  # nothing of customer 2 is due yet
    with pytest.raises(ValueError):  # the whole company is unreadable now
        billing.state()
    paid, upgrade = billing.invoices(customer_id="cus_1")
    assert paid.amount_due == usd("-1.00")  # paid in full, then credited 1.00
    assert upgrade.amount_due == upgrade.total > usd("0.00")


def test_numbers_are_gapless_across_customers(engine: Engine) -> None:
    billing = service(engine)
    for n in (1, 2, 3):
        _customer(billing, n)
    billing.execute(AmendSubscription("amd_2", "con_2", date(2026, 1, 16),
                                      (AddSeats("ln_seats", 5),)))
    numbers = [s.number for s in billing.invoices()]
    assert numbers == [f"INV-le_us-{k:06d}" for k in range(1, 5)]
    with engine.connect() as conn:
        stored = conn.execute(select(tables.document_numbers.c.last_number)).scalars().all()
    assert stored == [4]


def test_usage_id_taken_by_another_subscription_is_refused_and_writes_nothing(
        engine: Engine) -> None:
    billing = service(engine)
    one, two = _customer(billing, 1), _customer(billing, 2)
    billing.execute(RecordUsage(UsageRecord("use_x", one, "prod_usage_overage", 5,
                                            date(2026, 1, 9))))
    before = snapshot(engine)
    with pytest.raises(DuplicateIdError):
        billing.execute(RecordUsage(UsageRecord("use_x", two, "prod_usage_overage", 5,
                                                date(2026, 1, 9))))
    assert snapshot(engine) == before


def test_a_clock_run_reads_only_subscriptions_due(engine: Engine) -> None:
    billing = service(engine)
    monthly = _customer(billing, 1)
    _customer(billing, 2, BillingFrequency.ANNUAL)  # next due on the term end
    _break_customer(engine, 2)
    applied = billing.execute(RunClock(date(2026, 3, 1)))
    assert applied.emitted and {e.aggregate.id for e in applied.emitted
                                if e.aggregate.type == "contract"} <= {monthly}
    assert len(billing.invoices(customer_id="cus_1")) == 3  # Jan, Feb, Mar in advance


def test_a_stale_next_step_is_read_once_then_stored_exactly(engine: Engine) -> None:
    billing = service(engine)
    _customer(billing, 2, BillingFrequency.ANNUAL)
    subs = tables.subscriptions
    with engine.begin() as conn:  # as the migration's lower bound leaves an untouched row
        conn.execute(update(subs).values(next_step_on=START))
    assert billing.execute(RunClock(date(2026, 3, 1))).emitted == ()
    with engine.connect() as conn:
        assert conn.execute(select(subs.c.next_step_on)).scalar_one() == END  # annual


def test_one_pass_balances_equal_amount_due(engine: Engine) -> None:
    billing = service(engine)
    for n in (1, 2):
        _customer(billing, n)
    billing.execute(RunClock(date(2026, 4, 1)))
    for k, summary in enumerate(billing.invoices()):
        if k % 2 == 0:
            billing.execute(PayInvoice(f"pay_{k}", summary.id, summary.total,
                                       date(2026, 4, 2)))
    state = billing.state()
    due = balances(state)
    assert due and all(due[r.invoice.id].due == amount_due(state, r.invoice.id)
                       for r in state.invoices)


def test_numbers_follow_the_contracts_entity_not_the_customers(engine: Engine) -> None:
    billing = service(engine)
    _customer(billing, 1)
    for n in (2, 3):  # customers of le_us whose contracts are booked by le_eu
        billing.execute(RegisterCustomer(CustomerAccount(f"cus_{n}", f"Customer {n}", "le_us",
                                                         "USD", "US")))
        contract = SubscriptionContract(f"con_{n}", f"cus_{n}", "le_eu", "USD", START, END,
                                        BillingFrequency.MONTHLY, (seats(10),))
        billing.execute(CreateSubscription(contract, f"ord_{n}"))
    assert [s.number for s in billing.invoices()] == \
        ["INV-le_us-000001", "INV-le_eu-000001", "INV-le_eu-000002"]
