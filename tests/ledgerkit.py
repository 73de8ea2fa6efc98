"""An embedded ledger on a test database, and documents in the domain's own words."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine

from finsync.domain.dispute import DisputeClosure, DisputeFunds, DisputeOutcome, DisputeStep
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, PaymentApplication, Refund
from finsync.domain.tax import TaxDetail
from finsync.systems.ledger.chart import DEFAULT_CHART, parse_chart
from finsync.systems.ledger.fx import Rate
from finsync.systems.ledger.migrate import upgrade
from finsync.systems.ledger.rules import AccountMap
from finsync.systems.ledger.service import LedgerService

CHART = parse_chart(DEFAULT_CHART.read_text())
RATES = (Rate("EUR", "USD", date(2026, 1, 1), Decimal("1.10")),
         Rate("EUR", "USD", date(2026, 3, 1), Decimal("1.20")),
         Rate("USD", "EUR", date(2026, 1, 1), Decimal("0.90")))


def wipe_books(engine: Engine) -> None:
    """Empty every ledger table (fresh books for each hypothesis example)."""
    from finsync.systems.ledger import tables

    with engine.begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            if conn.dialect.has_table(conn, table.name):
                conn.execute(table.delete())


def ledger_service(engine: Engine, **governance: int) -> LedgerService:
    from finsync.systems.ledger.governance import Governor

    upgrade(engine)
    service = LedgerService(engine, lambda: datetime.now(UTC), Governor(**governance))
    service.create_entity("le_us", "Acme US", "USD", CHART,
                          AccountMap(recognised_on_invoice=frozenset({"prod_services"})))
    service.create_entity("le_eu", "Acme EU", "EUR", CHART)
    for entity in ("le_us", "le_eu"):
        service.open_year(entity, 2026)
    for rate in RATES:
        service.set_rate(rate)
    return service


Breakdown = Sequence[tuple[str, str]]  # (jurisdiction, tax of one line)


def _line(n: int, product: str, amount: Money, tax: Money, start: date,
          breakdown: Breakdown = ()) -> DocumentLine:
    """A line; with `breakdown`, its tax is the sum of those jurisdictions' lines."""
    taxes = tuple(TaxDetail(code, "sales_tax", Decimal("0.05"), amount,
                            Money.of(share, amount.currency)) for code, share in breakdown)
    if taxes:
        tax = total([d.amount for d in taxes], amount.currency)
    return DocumentLine(f"l{n}", product, product, 1, amount, tax, start, date(2027, 1, 1),
                        taxes=taxes)


def invoice(invoice_id: str, amounts: list[str], currency: str = "USD",
            on: date = date(2026, 1, 15), tax: str = "0", customer: str = "cus_1",
            entity: str = "le_us", products: list[str] | None = None,
            breakdown: Breakdown = ()) -> Invoice:
    """`breakdown`: each line's tax per jurisdiction (instead of `tax`, which has none)."""
    products = products or ["prod_seat"] * len(amounts)
    lines = tuple(_line(n, p, Money.of(a, currency), Money.of(tax, currency).quantize(), on,
                        breakdown)
                  for n, (a, p) in enumerate(zip(amounts, products, strict=True)))
    subtotal = total([ln.amount for ln in lines], currency)
    tax_total = total([ln.tax_amount for ln in lines], currency)
    return Invoice(invoice_id, invoice_id.upper(), customer, "con_1", 1, entity, currency, on,
                   on, lines, subtotal, tax_total, subtotal + tax_total)


def payment(payment_id: str, amount: str, applied: dict[str, str], currency: str = "USD",
            on: date = date(2026, 1, 20), customer: str = "cus_1",
            entity: str = "le_us") -> Payment:
    return Payment(payment_id, customer, entity, Money.of(amount, currency), on,
                   tuple(PaymentApplication(i, Money.of(a, currency)) for i, a in applied.items()))


def credit_memo(memo_id: str, invoice_id: str, amount: str, currency: str = "USD",
                on: date = date(2026, 2, 1), reason: str = "sla_credit",
                customer: str = "cus_1", entity: str = "le_us",
                breakdown: Breakdown = ()) -> CreditMemo:
    """`amount` before tax; `breakdown`: the tax it gives back per jurisdiction."""
    money = Money.of(amount, currency)
    line = _line(0, "prod_seat", money, Money.zero(currency), on, breakdown)
    return CreditMemo(memo_id, memo_id.upper(), invoice_id, customer, entity, currency, on,
                      reason, (line,), money, line.tax_amount, money + line.tax_amount)


def refund(refund_id: str, amount: str, currency: str = "USD", on: date = date(2026, 2, 10),
           customer: str = "cus_1", entity: str = "le_us") -> Refund:
    return Refund(refund_id, "pay_1", customer, entity, Money.of(amount, currency), on, "credit")


def dispute_funds(txn: str, amount: str, fee: str, currency: str = "USD",
                  on: date = date(2026, 2, 10), dispute: str = "du_1",
                  entity: str = "le_us") -> DisputeFunds:
    """A step of dispute `dispute`'s money: `amount` taken (negative) or given back."""
    return DisputeFunds(txn, dispute, "pi_1", entity, Money.of(amount, currency),
                        Money.of(fee, currency), on)


def dispute_closure(outcome: str, *taken: str, currency: str = "USD",
                    on: date = date(2026, 3, 20), dispute: str = "du_1",
                    entity: str = "le_us") -> DisputeClosure:
    """Dispute `dispute` closed; `taken` the amounts of its steps (one per step, booked on
    10 Feb), so what is unrecovered is minus their sum."""
    steps = tuple(DisputeStep(f"txn_{n}", Money.of(a, currency), date(2026, 2, 10))
                  for n, a in enumerate(taken))
    unrecovered = -total([s.amount for s in steps], currency)
    return DisputeClosure(dispute, "pi_1", entity, DisputeOutcome(outcome), unrecovered, on,
                          steps)
