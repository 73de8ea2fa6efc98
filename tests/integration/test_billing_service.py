"""The billing service on SQLite and PostgreSQL: the reference amendment end to end, the
stored state equals the core's, refused commands write nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select, update

from finsync.connectors.embedded.billing import envelope
from finsync.domain import codec
from finsync.domain.contract import CONTRACT_LEVEL, ContractLine
from finsync.domain.errors import DomainError
from finsync.domain.events import ContractAmended, InvoiceIssued
from finsync.domain.ids import derive_id
from finsync.domain.invoice import Invoice, UsageRecord
from finsync.domain.money import Money
from finsync.systems.billing import tables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import AddProduct, AddSeats
from finsync.systems.billing.errors import (
    AmendmentDateError,
    BillingCurrencyError,
    BillingError,
    InvalidQuantityError,
    UnknownPriceError,
)
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.handler import Command, RecordUsage, RunClock, handle
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from finsync.systems.billing.state import BillingState
from tests.unit.billing.servicekit import (
    CONFIG,
    END,
    MAY_16,
    REGISTER,
    UPGRADE,
    create,
    envelopes,
    overage,
    seats,
    service,
    snapshot,
    usd,
)

NOW = datetime(2026, 5, 16, tzinfo=UTC)


def _invoices(emitted: tuple[Emitted, ...]) -> list[Invoice]:
    return [e.event.invoice for e in emitted if isinstance(e.event, InvoiceIssued)]


def test_reference_amendment_invoices_the_documented_proration(engine: Engine) -> None:
    # 500 -> 800 seats and premium analytics on 2026-05-16, 230 of 365 days left (by day):
    #   300 x 120.00 x 230/365 = 22684.93 ; 24000.00 x 230/365 = 15123.29 ; US tax 0.00
    billing = service(engine)
    billing.execute(REGISTER)
    billing.execute(create())
    applied = billing.execute(UPGRADE)
    assert [type(e.event) for e in applied.emitted] == [ContractAmended, InvoiceIssued]
    [invoice] = _invoices(applied.emitted)
    assert [x.amount for x in invoice.lines] == [usd("22684.93"), usd("15123.29")]
    assert invoice.total == usd("37808.22")
    assert {(x.service_start, x.service_end, x.proration) for x in invoice.lines} == \
        {(MAY_16, END, True)}
    baseline = billing.state().subscription("con_acme_2026").renewal_lines
    assert [(x.line_id, x.quantity) for x in baseline] == [("ln_seats", 800),
                                                           ("ln_analytics", 1)]


def test_reference_amendment_is_stored_as_a_version_with_its_diff(engine: Engine) -> None:
    billing = service(engine)
    for command in (REGISTER, create(), UPGRADE):
        billing.execute(command)
    with engine.connect() as conn:
        versions = conn.execute(select(tables.contract_versions).order_by(
            tables.contract_versions.c.version)).mappings().all()
        lines = conn.execute(select(tables.invoice_lines.c.amount_minor).join(
            tables.invoices, tables.invoices.c.id == tables.invoice_lines.c.invoice_id).where(
            tables.invoices.c.correlation_id == "amd_acme_0002")).scalars().all()
    assert [(v["version"], v["amendment_id"]) for v in versions] == \
        [(1, None), (2, "amd_acme_0002")]
    assert ["quantity_changed", "ln_seats", "500", "800"] in json.loads(versions[1]["changes"])
    assert sorted(lines) == [1512329, 2268493]


def test_reference_amendment_envelopes_map_cleanly_in_order(engine: Engine) -> None:
    billing = service(engine)
    for command in (REGISTER, create(), UPGRADE):
        billing.execute(command)
    sent = envelopes(engine)
    assert [e["type"] for e in sent] == ["contract.created", "invoice.issued",
                                         "contract.amended", "invoice.issued"]
    read = [codec.draft_from_json(item) for item in sent]
    assert sent[3]["correlation_id"] == "amd_acme_0002"
    assert sent[3]["causation_id"] == read[2].stamp(NOW).event_id


def _lifecycle() -> list[Command]:
    first_invoice_total = usd("60000.00")
    return [
        REGISTER, create(seats(), overage()),
        RecordUsage(UsageRecord("use_1", "con_acme_2026", "prod_usage_overage", 1_250_000,
                                date(2026, 2, 10))),
        RecordUsage(UsageRecord("use_1", "con_acme_2026", "prod_usage_overage", 1_250_000,
                                date(2026, 2, 10))),
        RunClock(date(2026, 5, 1)),
        UPGRADE,
        PayInvoice("pay_1", _first_id(), first_invoice_total, date(2026, 1, 27)),
        IssueCreditMemo(_first_id(), CreditReason.SLA_CREDIT, date(2026, 8, 5),
                        usd("200.00"), "sla_acme_2026_07"),
        RefundPayment("re_1", "pay_1", usd("200.00"), date(2026, 8, 12)),
        RunClock(date(2027, 2, 1)),
        CancelSubscription("can_1", "con_acme_2026", date(2027, 3, 15),
                           CancelMode.IMMEDIATE_WITH_REFUND),
    ]


def _first_id() -> str:
    return derive_id("inv", "le_us", "INV-le_us-000001")


def test_stored_state_equals_the_state_the_core_returned(engine: Engine) -> None:
    billing = service(engine)
    pure = Outcome(BillingState(CONFIG))
    for command in _lifecycle():
        billing.execute(command)
        pure = pure.then(handle(pure.state, command))
    stored = billing.state()
    assert stored == pure.state
    assert len(stored.invoices) == 4 and stored.refunds and stored.usage_charges
    assert [e["source_event_id"] for e in envelopes(engine)] == \
        [e["source_event_id"] for e in _pure_envelopes(pure)]


def _pure_envelopes(outcome: Outcome) -> list[codec.JsonObject]:
    return [envelope(e, NOW) for e in outcome.emitted]



def test_a_diff_stored_with_empty_contract_level_line_ids_reads_the_same(engine: Engine) -> None:
    # rows written before CONTRACT_LEVEL existed spell a contract-level change's line id ""
    billing = service(engine)
    for command in (REGISTER, create(), CancelSubscription("can_1", "con_acme_2026", MAY_16,
                                                           CancelMode.AT_TERM_END)):
        billing.execute(command)
    before = billing.state()
    [change] = before.subscription("con_acme_2026").amendments[-1].changes
    assert change.line_id == CONTRACT_LEVEL
    versions = tables.contract_versions
    with engine.begin() as conn:
        second = versions.c.version == 2
        stored = conn.execute(select(versions.c.changes).where(second)).scalar_one()
        old = [[op, "" if line_id == CONTRACT_LEVEL else line_id, was, now]
               for op, line_id, was, now in json.loads(stored)]
        assert old == [["cancel_at_term_end", "", "renews", "ends 2027-01-01"]]
        conn.execute(update(versions).where(second).values(changes=json.dumps(old)))
    assert billing.state() == before

BAD: dict[str, tuple[Command, type[DomainError]]] = {
    "negative_seats": (AmendSubscription("amd_bad", "con_acme_2026", MAY_16,
                                         (AddSeats("ln_seats", -5),)), InvalidQuantityError),
    "unknown_product": (AmendSubscription("amd_bad", "con_acme_2026", MAY_16,
                                          (AddProduct("ln_x", "price_nope"),)),
                        UnknownPriceError),
    "before_contract": (AmendSubscription("amd_bad", "con_acme_2026", date(2025, 12, 1),
                                          (AddSeats("ln_seats", 5),)), AmendmentDateError),
    "currency_mismatch": (PayInvoice("pay_eur", _first_id(), Money.of("10.00", "EUR"),
                                     MAY_16), BillingCurrencyError),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_command_is_refused_and_writes_nothing(engine: Engine, case: str) -> None:
    billing = service(engine)
    billing.execute(REGISTER)
    billing.execute(create())
    before = snapshot(engine)
    bad, error = BAD[case]
    with pytest.raises(error):
        billing.execute(bad)
    assert snapshot(engine) == before


def test_subscription_in_another_currency_is_refused_and_writes_nothing(engine: Engine) -> None:
    billing = service(engine)
    billing.execute(REGISTER)
    before = snapshot(engine)
    eur = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual_eur", 5,
                       Money.of("110.00", "EUR"), seats().start_date, END)
    command = create()
    wrong = type(command)(command.contract.__class__(
        "con_eur", "cus_acme", "le_us", "EUR", eur.start_date, END,
        command.contract.billing_frequency, (eur,)), "q")
    with pytest.raises(BillingError, match="customer"):
        billing.execute(wrong)
    assert snapshot(engine) == before


def test_usage_sent_twice_is_stored_and_emitted_once(engine: Engine) -> None:
    billing = service(engine)
    billing.execute(REGISTER)
    billing.execute(create(seats(), overage()))
    record = UsageRecord("use_1", "con_acme_2026", "prod_usage_overage", 10, date(2026, 2, 1))
    first, again = billing.execute(RecordUsage(record)), billing.execute(RecordUsage(record))
    assert (len(first.outbox_seqs), len(again.outbox_seqs)) == (1, 0)
    assert len(snapshot(engine)["billing_usage_records"]) == 1
