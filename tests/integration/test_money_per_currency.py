"""No code path adds money of two currencies (issue 15, Build 6): a property test that tries.

Documents in USD, EUR, JPY (no minor unit) and KWD (three) go through the hub to a target
that refuses them all, so each opens an exception with its money at stake; a journal entry
may span two or three currencies (the revenue engine's are per currency now, a hand-made
or older one need not be). Then every reader of money at stake answers per currency, and
their figures add up: the hub's status (overall, by status, by class), the exception
listing, the triage queue, the console overview (by class and by age) and the metrics'
exposure. Nothing raises `currency_mismatch`, the per-currency totals equal the sum of the
amounts the documents put at stake, and a document in several currencies is counted in
none of them (an exception holds one amount) but names each amount in its summary.

Pure paths tried alongside: `amount_at_stake`, the close checklist's journal totals, the
revenue journals built from contracts in several currencies, reconciliation totals.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain import codec
from finsync.domain.clock import Period
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.events import (
    AnyEvent,
    ContractCreated,
    EventType,
    InvoiceIssued,
    PaymentApplied,
    RevenueJournalRecorded,
)
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money, per_currency
from finsync.domain.payment import Payment
from finsync.domain.status import UNRESOLVED
from finsync.hub.close_checklist import JournalState, SentJournal
from finsync.hub.metrics import measure
from finsync.hub.milestone import Milestone
from finsync.hub.service import Hub
from finsync.hub.status import Waiting
from finsync.hub.target import amount_at_stake
from finsync.recon.model import CheckResult, Item, Report
from finsync.storage.db import make_engine
from finsync.storage.exception_log import QueueQuery
from finsync.storage.raw_log import RawIn
from finsync.systems.revrec.journal import ContractMovement, Movement, journal_of
from finsync.triage.queue import QueueReader
from finsync.views.overview import Overview
from tests.conftest import empty_postgres
from tests.currencykit import contract, invoice
from tests.hubkit import Clock, make_hub
from tests.hubkit import settings as hub_settings

CURRENCIES = ("USD", "EUR", "JPY", "KWD")
ACCOUNTS = {"revenue": "4000", "deferred_revenue": "2400", "contract_asset": "1300",
            "unbilled_receivable": "1250"}
ROUTES = {t: ("ledger",) for t in (EventType.INVOICE_ISSUED, EventType.PAYMENT_APPLIED,
                                   EventType.REVENUE_JOURNAL_RECORDED,
                                   EventType.CONTRACT_CREATED)}


class Refusing:
    """A target that refuses everything as a master-data mismatch."""

    system = "ledger"

    def handles(self, event_type: EventType) -> bool:
        return event_type in ROUTES

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        raise PermanentError("refused on purpose",
                             exception_class=ExceptionClass.MASTER_DATA_MISMATCH)

    def milestone(self, event_type: EventType) -> Milestone | None:
        return None

    def find_receipt(self, delivery_key: str) -> Receipt | None:
        return None


# -- documents in several currencies ----------------------------------------------------------

minor = st.integers(1, 10**9)


@st.composite
def journals(draw: st.DrawFn, n: int) -> JournalEntry:
    """A balanced entry over one to three currencies: per currency one debit, and the same
    amount credited in one or two lines."""
    chosen = draw(st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=3, unique=True))
    lines: list[JournalLine] = []
    for currency in chosen:
        amount = Money.from_minor(draw(minor), currency)
        lines.append(JournalLine("2400", Side.DEBIT, amount))
        cut = draw(st.integers(0, amount.to_minor() - 1))
        parts = [amount] if cut == 0 else [Money.from_minor(cut, currency),
                                          amount - Money.from_minor(cut, currency)]
        lines += [JournalLine("4000", Side.CREDIT, part) for part in parts]
    return JournalEntry(f"je_{n}", "le_us", date(2026, 1, 31), "by hand", tuple(lines))


@st.composite
def documents(draw: st.DrawFn, n: int) -> AnyEvent:
    kind = draw(st.sampled_from(("invoice", "payment", "contract", "journal")))
    currency = draw(st.sampled_from(CURRENCIES))
    if kind == "journal":
        return RevenueJournalRecorded(draw(journals(n)))
    unit = str(Money.from_minor(draw(minor), currency).amount)
    signed = contract(currency, unit, seats=draw(st.integers(1, 50)))
    signed = signed.__class__(f"con_{n}", *(getattr(signed, f) for f in (
        "customer_id", "legal_entity", "currency", "start_date", "end_date",
        "billing_frequency", "lines")))
    if kind == "contract":
        return ContractCreated(signed)
    billed = invoice(signed)
    billed = billed.__class__(f"inv_{n}", *(getattr(billed, f) for f in (
        "number", "customer_id", "contract_id", "contract_version", "legal_entity",
        "currency", "issue_date", "due_date", "lines", "subtotal", "tax_total", "total")))
    if kind == "invoice":
        return InvoiceIssued(billed)
    return PaymentApplied(Payment(f"pay_{n}", billed.customer_id, "le_us", billed.total,
                                  date(2026, 1, 15), ()))


@st.composite
def batches(draw: st.DrawFn) -> list[AnyEvent]:
    size = draw(st.integers(1, 8))
    return [draw(documents(n)) for n in range(size)]


def expected_stake(event: AnyEvent) -> tuple[Money, ...]:
    """What the document puts at stake, worked out here on its own."""
    document = event.document
    if isinstance(document, JournalEntry):
        sums: dict[str, Decimal] = {}
        for line in document.lines:
            if line.side is Side.DEBIT:
                sums[line.amount.currency] = sums.get(line.amount.currency, Decimal(0)) \
                    + line.amount.amount
        return tuple(Money(sums[c], c) for c in sorted(sums))
    if isinstance(event, ContractCreated):
        line = event.contract.lines[0]
        return ((line.unit_price * line.quantity).quantize(),)
    if isinstance(event, InvoiceIssued):
        return (event.invoice.total,)
    assert isinstance(event, PaymentApplied)
    return (event.payment.amount,)


def body(event: AnyEvent, n: int) -> bytes:
    source = "revrec" if isinstance(event, RevenueJournalRecorded) else "billing"
    draft = DraftEnvelope(event, source, f"doc-{n}", datetime(2026, 1, 1, tzinfo=UTC), f"c-{n}")
    return json.dumps(codec.draft_to_json(draft)).encode()


# -- the paths, through the hub and its store --------------------------------------------------

@dataclass
class Store:
    """A fresh database per example (hypothesis runs many in one test)."""

    backend: str
    folder: Path
    template: Path | None

    def url(self) -> str:
        if self.template is None:
            empty_postgres(self.backend)
            return self.backend
        path = self.folder / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        yield Store(str(request.getfixturevalue("pg_database")), tmp_path, None)
        return
    yield Store("sqlite", tmp_path, request.getfixturevalue("sqlite_template"))


def totals(amounts: list[tuple[Money, ...]]) -> dict[str, Money]:
    """Per currency, the amounts of the documents in one currency (an exception holds one)."""
    return {m.currency: m for m in per_currency(a[0] for a in amounts if len(a) == 1)}


def shown(amounts: dict[str, Money]) -> dict[str, str]:
    return {c: str(m.amount) for c, m in sorted(amounts.items())}


def refused(hub: Hub, events: list[AnyEvent]) -> None:
    hub.intake.store([RawIn("canonical", body(e, n), {}) for n, e in enumerate(events)])
    hub.run_until_idle()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=batches())
def test_money_at_stake_is_per_currency_on_every_path(store: Store,
                                                      events: list[AnyEvent]) -> None:
    stakes = [expected_stake(e) for e in events]
    assert [amount_at_stake(e) for e in events] == stakes
    want = totals(stakes)
    engine = make_engine(store.url())
    clock = Clock()
    try:
        hub = make_hub(engine, store.folder, targets={"ledger": Refusing()},
                       hub_settings=hub_settings(ROUTES), clock=clock)
        refused(hub, events)
        status = hub.status_report()
        assert status.unresolved_count == len(events)  # one exception a document
        assert status.at_stake == want
        json_status = status.as_json()["unresolved_exceptions"]
        assert json_status["at_stake"] == shown(want)
        for groups in ("by_status", "by_class"):
            summed = per_currency(Money.of(a, c) for g in json_status[groups].values()
                                  for c, a in g["at_stake"].items())
            assert {m.currency: m for m in summed} == want
        listing = hub.exception_listing("all", can_read_pii=True)
        assert listing.at_stake == want
        assert len(listing.rows) == len(events)
        for event, stake in zip(events, stakes, strict=True):
            (row,) = [r for r in listing.rows
                      if any(o.endswith(f":{event.document.id}") for o in r["objects"])]
            if len(stake) == 1:
                assert row["amount_at_stake"] == str(stake[0])
            else:  # several currencies: no amount, each named in the summary
                assert row["amount_at_stake"] is None
                assert all(str(m) in row["summary"] for m in stake)
        page = QueueReader(engine, clock).queue(QueueQuery(UNRESOLVED))
        assert page.at_stake() == shown(want)
        metrics = measure(engine, ["ledger"], [], clock() + timedelta(days=3))
        overview = Overview(metrics, (), date(2026, 1, 1), date(2026, 1, 1), (), None,
                            Waiting())
        assert {a["currency"]: a["amount"] for a in overview.as_json()["at_stake"]["amounts"]} \
            == shown(want)
        for heading in (overview.by_class, overview.by_age):
            summed = per_currency(Money.of(a, c) for s in heading for c, a in s.amounts)
            assert {m.currency: m for m in summed} == want
    finally:
        engine.dispose()


# -- pure paths -----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(entry=journals(0))
def test_a_journal_in_several_currencies_shows_its_totals_per_currency(
        entry: JournalEntry) -> None:
    shown_json = SentJournal(entry, None, JournalState.NOT_SENT).as_json()
    want = expected_stake(RevenueJournalRecorded(entry))
    assert shown_json["totals"] == [{"amount": str(m.amount), "currency": m.currency}
                                    for m in want]
    assert shown_json["total"] == (shown_json["totals"][0] if len(want) == 1 else None)


movements = st.builds(
    lambda currency, rc, revenue: ContractMovement(
        rc, Movement(Money.from_minor(revenue, currency), Money.from_minor(revenue, currency),
                     Money.zero(currency), Money.zero(currency)), (f"sch_{rc}@v1",)),
    st.sampled_from(CURRENCIES), st.uuids().map(lambda u: f"rc_{u.hex[:8]}"),
    st.integers(-10**9, 10**9))


@settings(max_examples=200, deadline=None)
@given(moved=st.lists(movements, max_size=8, unique_by=lambda m: m.revenue_contract_id))
def test_revenue_journals_of_contracts_in_several_currencies_are_one_per_currency(
        moved: list[ContractMovement]) -> None:
    period = Period(date(2026, 1, 1), date(2026, 2, 1))
    entries = journal_of(moved, "le_us", period, ACCOUNTS)
    moving = sorted({m.movement.revenue.currency for m in moved
                     if not m.movement.revenue.is_zero})
    assert [e.lines[0].amount.currency for e in entries] == moving
    assert len({e.id for e in entries}) == len(entries)
    for entry in entries:
        (currency,) = {line.amount.currency for line in entry.lines}
        credited = per_currency(ln.amount if ln.side is Side.CREDIT else -ln.amount
                                for ln in entry.lines if ln.account == "4000")
        recognised = per_currency(m.movement.revenue for m in moved
                                  if m.movement.revenue.currency == currency)
        assert credited == recognised  # revenue recognised, to the minor unit, per currency


items = st.builds(lambda n, currency, expected, actual: (currency, Item(
    f"invoice:{n}", Money.from_minor(expected, currency), Money.from_minor(actual, currency))),
    st.integers(0, 99), st.sampled_from(CURRENCIES), st.integers(0, 10**6),
    st.integers(0, 10**6))


@settings(max_examples=200, deadline=None)
@given(found=st.lists(items, max_size=12))
def test_reconciliation_totals_are_per_currency(found: list[tuple[str, Item]]) -> None:
    checks = tuple(CheckResult("billing_vs_erp_ar", f"le_{currency.lower()}", currency,
                               tuple(i for c, i in found if c == currency))
                   for currency in CURRENCIES)
    report = Report(date(2026, 1, 31), checks)
    want: dict[str, Any] = {}
    for currency, item in found:
        if item.is_break:
            gap = abs(item.actual.amount - item.expected.amount)
            want[currency] = want.get(currency, Decimal(0)) + gap
    got = {c: m for c, m in report.total_variance().items() if not m.is_zero}
    assert {c: m.amount for c, m in got.items()} == want
    assert all(m.currency == c for c, m in report.total_variance().items())
