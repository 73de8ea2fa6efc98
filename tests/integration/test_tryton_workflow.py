"""The reference workflow's postings land in a real Tryton: billing → hub → Tryton (through
the posting buffer) and the revenue engine; month-ends closed in Tryton; the six
reconciliation checks run against Tryton and show zero variance, and AR per customer in
Tryton equals what billing says is open."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from finsync.bootstrap import Finance, build_finance
from finsync.config import DEFAULT_CONFIG, SystemSection, parse_config
from finsync.connectors.ports import Receivable
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.hub.buffer import PostingMode
from finsync.storage.raw_log import RawIn
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import AddProduct, AddSeats
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.builders import envelope, invoice_doc, payment_doc
from tests.external.tryton import ADMIN_PASSWORD, TrytonSite
from tests.external.tryton_fixtures import COMPANY, TrytonBooks, deliver_billing

START, END = date(2026, 1, 1), date(2027, 1, 1)


def _pay_due(billing: BillingService, day: date, tag: str) -> None:
    for n, s in enumerate(billing.invoices()):
        if s.amount_due.amount > 0:
            billing.execute(PayInvoice(f"{tag}_{n}", s.id, s.amount_due, day))


def test_reference_workflow_reconciles_against_tryton(
        tryton_finance: tuple[Finance, BillingService, SimClock]) -> None:
    hub_finance, billing, clock = tryton_finance
    usd = lambda amount: Money.of(amount, "USD")  # noqa: E731
    billing.execute(RegisterCustomer(CustomerAccount("cus_acme", "Acme", "le_us", "USD", "US")))
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_acme", "cus_acme", "le_us", "USD", START, END, BillingFrequency.ANNUAL,
        (ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 500,
                      usd("120.00"), START, END),))))
    _pay_due(billing, date(2026, 1, 20), "pay_jan")
    clock.to(date(2026, 5, 15))
    billing.execute(AmendSubscription("amd_acme_0002", "con_acme", date(2026, 5, 15), (
        AddSeats("ln_seats", 300), AddProduct("ln_analytics", "price_analytics_annual", 1)),
        "upgrade"))
    deliver_billing(hub_finance, billing, clock)
    for month in range(1, 6):
        clock.to(date(2026, month + 1, 1))
        hub_finance.close.close("le_us", f"2026-{month:02d}", "controller")
    clock.to(date(2026, 6, 10))
    _pay_due(billing, date(2026, 6, 10), "pay_jun")
    first = billing.invoices()[0].id
    billing.execute(IssueCreditMemo(first, CreditReason.SLA_CREDIT, date(2026, 6, 12),
                                    usd("5000.00"), "sla_acme"))
    billing.execute(RefundPayment("ref_acme", "pay_jan_0", usd("5000.00"), date(2026, 6, 20)))
    deliver_billing(hub_finance, billing, clock)
    clock.to(date(2026, 7, 1))
    hub_finance.close.close("le_us", "2026-06", "controller")

    assert hub_finance.triage.listing() == []
    report = hub_finance.recon.run(date(2026, 6, 30))
    assert {c.name: [i.as_dict() for i in c.breaks] for c in report.checks if c.breaks} == {}
    assert report.total_variance()["USD"].is_zero
    items = {c.name: len(c.items) for c in report.checks}
    assert items["recognised_vs_gl_revenue"] == 6 and items["billing_vs_erp_ar"] >= 3
    # What Tryton holds per customer is what billing says is open (all paid: zero).
    receivables = hub_finance.ports.ledger().receivables("le_us", date(2026, 6, 30))
    assert sum((r.open_amount.amount for r in receivables), Money.zero("USD").amount) == 0


def _summary_hub(books: TrytonBooks, directory: Path, posting: PostingMode) -> Finance:
    """A hub whose ledger is this Tryton clone, posting detail or daily summaries."""
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), directory)
    systems = dict(config.systems)
    systems["ledger"] = SystemSection(
        role="ledger", connector="tryton", url=books.site.server.url, database=books.database,
        companies={"le_us": COMPANY}, batch_size=25, posting=posting)
    routes = {"invoice.issued": ["ledger"], "payment.applied": ["ledger"]}
    config = config.model_copy(update={"systems": systems, "routes": routes, "pumps": {}})
    return build_finance(config)


def _stream() -> list[bytes]:
    events = []
    for n in range(12):
        doc = invoice_doc(f"inv_{n}", f"{100 + n}.00", customer=f"cus_{n % 3}")
        events.append(envelope("invoice.issued", f"i{n}", ("invoice", f"inv_{n}", None),
                               {"invoice": doc}, correlation_id=f"o{n}"))
        if n % 2:
            events.append(envelope(
                "payment.applied", f"p{n}", ("payment", f"pay_{n}", None),
                {"payment": payment_doc(f"pay_{n}", f"{100 + n}.00", f"inv_{n}",
                                        customer=f"cus_{n % 3}")}, correlation_id=f"o{n}"))
    return [json.dumps(e).encode() for e in events]


def test_daily_summaries_into_tryton_book_what_detail_books(
        tryton: TrytonSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_TRYTON_PASSWORD", ADMIN_PASSWORD)
    balances = {}
    modes: tuple[PostingMode, ...] = ("detail", "daily_summary")
    for posting in modes:
        books = TrytonBooks(tryton, tryton.clone())
        monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite:///{tmp_path / posting}.db")
        hub_finance = _summary_hub(books, tmp_path, posting)
        hub_finance.hub.intake.store([RawIn("canonical", b, {}) for b in _stream()])
        hub_finance.hub.run_until_idle()
        assert hub_finance.hub.status()["deliveries"] == {"done": 18}, posting
        erp = hub_finance.ports.ledger()
        balances[posting] = (
            [(b.account, str(b.balance)) for b in erp.trial_balance("le_us", date(2026, 12, 31))],
            _per_customer(erp.receivables("le_us", date(2026, 12, 31))))
        hub_finance.dispose()
        moves = len(books.moves())
        tryton.discard(books.database)
        # one move per document, or one per day (invoices on 1 Jan, payments on 15 Jan)
        assert moves == (18 if posting == "detail" else 2), (posting, moves)
    assert balances["detail"] == balances["daily_summary"]


def _per_customer(receivables: Sequence[Receivable]) -> dict[str, str]:
    totals: dict[str, Money] = {}
    for r in receivables:
        totals[r.customer_id] = totals.get(r.customer_id, Money.zero("USD")) + r.open_amount
    return {c: str(m) for c, m in sorted(totals.items())}
