"""One-off invoices through the revenue service's storage, on SQLite and PostgreSQL: booked
as their own point-in-time contract with their billings in one change, found again by the
credit notes against them, read back as positions and journals."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.connectors.ports import DeliveryContext
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.invoice import VOID, CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.service import RevenueService

SOLD = date(2026, 3, 10)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def _no_catalogue(product_id: str, on: date) -> StandaloneSellingPrice | None:
    return None


def _line(line_id: str, product: str, quantity: int, amount: str) -> DocumentLine:
    return DocumentLine(line_id, product, product, quantity, usd(amount), usd("0"), SOLD, SOLD)


# Setup 900.00 and training 3 x 100.00 less a 120.00 discount item: 810.00 + 270.00.
LINES = (_line("il_setup", "prod_setup", 1, "900.00"),
         _line("il_training", "prod_training", 3, "300.00"),
         _line("il_discount", "prod_discount", 1, "-120.00"))
ONE_OFF = Invoice("in_9", "INV-9", "cus_t", None, None, "le_us", "USD", SOLD, SOLD, LINES,
                  usd("1080.00"), usd("0"), usd("1080.00"))


def test_a_one_off_invoice_is_booked_once_and_credited_by_its_void(engine: Engine) -> None:
    upgrade(engine)
    service = RevenueService(engine, _no_catalogue)
    first = service.record_invoice(ONE_OFF, "k-inv", "evt-inv")
    assert first.subscription_contract_id == "in_9" and not first.replayed
    assert [ob for ob, _ in first.references] == ["il_setup", "il_training"]
    again = service.record_invoice(ONE_OFF, "k-inv-2", "evt-inv-2")  # another event, same doc
    assert again.revenue_contract_id == first.revenue_contract_id
    state = service.state("in_9")
    assert state is not None and len(state.billings) == 2
    assert service.record_invoice(ONE_OFF, "k-inv", "evt-inv").replayed

    (march,) = service.period_journals("le_us", Period(date(2026, 3, 1), date(2026, 4, 1)))
    assert {(ln.account, ln.side.value, str(ln.amount.amount))
                                  for ln in march.lines} == {("2400", "debit", "1080.00"),
                                                             ("4000", "credit", "1080.00")}
    subtotal = total([li.amount for li in LINES], "USD")
    void = CreditMemo("in_9_void", "INV-9-VOID", "in_9", "cus_t", "le_us", "USD",
                      date(2026, 4, 2), VOID, LINES, subtotal, usd("0"), subtotal)
    service.apply_credit_memo(void, "k-void", "evt-void")
    (april,) = service.period_journals("le_us", Period(date(2026, 4, 1), date(2026, 5, 1)))
    assert {(ln.account, ln.side.value, str(ln.amount.amount))
                                  for ln in april.lines} == {("2400", "credit", "1080.00"),
                                                             ("4000", "debit", "1080.00")}
    (position,) = service.positions("le_us", date(2026, 5, 1))
    assert (position.subscription_contract_id, position.transaction_price,
            position.balances.billed) == ("in_9", usd("0.00"), usd("0.00"))
    assert position.credits == (("in_9_void", usd("1080.00")),)


def test_the_revenue_port_takes_a_one_off_invoice_instead_of_waiting_for_a_contract(
        engine: Engine) -> None:
    # Before: "invoice in_9 names no contract", a sequencing_error retried forever.
    upgrade(engine)
    port = EmbeddedRevenue("revrec", RevenueService(engine, _no_catalogue))
    receipt = port.record_invoice(ONE_OFF, DeliveryContext("k-inv", "evt-inv", "stripe:in_9"))
    assert {(r.canonical_id, r.object_type) for r in receipt.references} >= {
        ("in_9", "revenue_contract"), ("in_9", "invoice")}
    assert [(s.obligation_id, str(s.allocated_price.amount)) for s in port.schedules("in_9")] \
        == [("il_setup", "810.00"), ("il_training", "270.00")]
