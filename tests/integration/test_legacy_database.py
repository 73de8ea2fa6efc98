"""A database written by the previous version is still read and replayed (issue 11).

The fixture `tests/fixtures/legacy/finsync-d9a1aea.db` was written by finsync at commit
d9a1aea939e13349ac8ce97016972af0753770fa (the last commit before typed canonical events),
by a script run against that commit's sources (`git archive` of it, with
`PYTHONPATH=<archive>/src`); the script is kept outside the repository because it runs
only against the old code. It drove the embedded systems through simulated time, with the
configuration `finsync.toml` next to it (the shipped one plus a Stripe source `stripe`):

- phase 1 (January 2026), Stripe owns subscriptions (`[ownership] subscription = "stripe"`,
  the only difference from `finsync.toml`): a Stripe subscription created (v1,
  `contract.created`) and updated (v2, `contract.amended` with Stripe's old ops
  `set_items` and `set_quantity` on line "*"), stored as poller deliveries, plus one webhook
  copy that maps to nothing; both contracts were delivered to the revenue engine.
- phase 2, the embedded billing platform owns subscriptions (as in `finsync.toml`), its
  outbox pumped by each run: two customers and annual subscriptions (USD in le_us, EUR with
  VAT in le_eu), invoices, payments (one raw body stored twice: a duplicate), usage
  (`usage.recorded`, `usage.rated`), an upgrade (`contract.amended`: `quantity_changed` +
  `line_added`), a downgrade with its credit memo, an SLA credit memo, a refund, a
  cancellation at term end (`contract.cancelled`, contract-level `cancel_at_term_end`),
  January and February closed in both entities (`revenue.journal_recorded`, source
  `revrec`); a body that is not JSON (raw event rejected, `mapping_error` left open);
  through intake source `canonical`: a contract `con_legacy_0001` (v1) and an
  `invoice.issued` of schema v1 (integer minor units, `total_minor`), then its v3 without v2
  (parked, still waiting); and a late Stripe `customer.subscription.deleted` (v3,
  `contract.cancelled` with Stripe's old op `cancel`), stored rejected with an
  `ownership_violation` left open.
  Every delivery (ledger and revrec) is done. The old hub upcast on intake, so the v1
  invoice is stored in the event log as schema v2; its raw body keeps v1 (test d upcasts it).

`finsync-d9a1aea.expected.json` is what the old code read from that database: the events
(id, type, status, …), raw events, deliveries, exceptions, trial balances as of
2026-12-31, journal entries, closed periods, revenue positions, billing's invoices, and
`clock_end`, the simulated time when the script stopped (the tests run at that time, so the
parked event is not yet overdue). `finsync-d9a1aea.missing-version.json` is the raw body of
the parked contract's missing v2, in the old canonical shape.

SQLite only: the file is a SQLite database as the previous version left it; the PostgreSQL
storage paths are covered by tests/contract/test_storage.py.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from finsync.bootstrap import (
    Finance,
    build_billing_service,
    build_finance,
    build_ledger_service,
)
from finsync.config import FinsyncConfig, parse_config
from finsync.domain import codec
from finsync.domain.contract import CONTRACT_LEVEL, ChangeOp, ContractAmendment
from finsync.domain.envelope import Envelope
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    ContractAmended,
    ContractCancelled,
    EventType,
    InvoiceIssued,
    event_class,
)
from finsync.domain.money import Money
from finsync.domain.status import DeliveryStatus, EventStatus
from finsync.hub.replay import ReplayFilter
from finsync.storage import event_log, jsonutil, raw_log
from finsync.storage.db import make_engine, reading
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import deliveries, duplicates, events, exceptions, raw_events

LEGACY = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"
COMMIT = "d9a1aea"
EXPECTED: dict[str, Any] = json.loads(
    (LEGACY / f"finsync-{COMMIT}.expected.json").read_text())
YEAR = 2026
AS_OF = date.fromisoformat(EXPECTED["as_of"])
POSITION_DAYS = (date(YEAR, 2, 1), date(YEAR, 3, 1), date(YEAR, 4, 1), AS_OF)

STRIPE_AMENDED = "evt_stripe_0002"  # source_event_id of the Stripe contract.amended (v2)
STRIPE_CANCELLED = "evt_stripe_0003"  # and of the rejected contract.cancelled (v3)
PARKED = "legacy:con_legacy_0001:v3"
MISSING = "legacy:con_legacy_0001:v2"


class Clock:
    """The fixture's own time: the moment the old code stopped writing."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Legacy:
    finance: Finance
    config: FinsyncConfig
    engine: Engine
    clock: Clock

    def settle(self, rounds: int = 20) -> None:
        """Run until nothing is due; a second per round keeps the parked event in its wait."""
        for _ in range(rounds):
            self.finance.hub.run_until_idle()
            status = self.finance.hub.status()["deliveries"]
            if not status.get(DeliveryStatus.PENDING) and not status.get(
                    DeliveryStatus.IN_FLIGHT):
                return
            self.clock.tick(1)
        with reading(self.engine) as conn:
            stuck = conn.execute(select(
                events.c.type, events.c.source_event_id, deliveries.c.target,
                deliveries.c.status, deliveries.c.last_error).join(
                events, events.c.event_id == deliveries.c.event_id).where(
                deliveries.c.status != DeliveryStatus.DONE)).all()
        raise AssertionError("deliveries not done:\n" + "\n".join(map(str, stuck)))


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[Legacy]:
    """A copy of the legacy database, opened (and migrated) by the current code."""
    (tmp_path / "var").mkdir()
    db = tmp_path / "var" / "finsync.db"
    shutil.copyfile(LEGACY / f"finsync-{COMMIT}.db", db)
    config = parse_config(tomllib.loads((LEGACY / "finsync.toml").read_text()), tmp_path)
    engine = make_engine(f"sqlite:///{db}")
    clock = Clock(datetime.fromisoformat(EXPECTED["clock_end"]))
    try:
        yield Legacy(build_finance(config, engine=engine, clock=clock), config, engine, clock)
    finally:
        engine.dispose()


# -- what the books say, in the shape the old code wrote into the expected file -------------

def books(legacy: Legacy) -> dict[str, Any]:
    ledger = build_ledger_service(legacy.config, legacy.engine, clock=legacy.clock)
    revenue = legacy.finance.ports.revenue()
    billing = build_billing_service(legacy.config, legacy.engine, legacy.clock)
    entities = [entity for entity, _name in ledger.entities()]
    return {
        "trial_balance": {
            entity: {r.account: str(r.balance) for r in ledger.trial_balance(entity, AS_OF)}
            for entity in entities},
        "journal_entries": [
            {"id": e.id, "entity": e.legal_entity, "date": e.posting_date.isoformat(),
             "correlation_id": e.correlation_id,
             "lines": [[ln.account, ln.side.value, str(ln.amount.amount), ln.amount.currency]
                       for ln in e.lines]}
            for e in ledger.entries()],
        "periods": [{"entity": p.legal_entity, "name": p.name, "status": p.status.value}
                    for p in ledger.periods() if p.status.value != "open"],
        "revenue_positions": {
            f"{entity}@{day.isoformat()}": [
                {"contract": p.subscription_contract_id, "customer": p.customer_id,
                 "currency": p.currency, "transaction_price": str(p.transaction_price.amount),
                 "billed": str(p.billed.amount), "recognised": str(p.recognised.amount),
                 "deferred_revenue": str(p.deferred_revenue.amount),
                 "contract_asset": str(p.contract_asset.amount),
                 "unbilled_receivable": str(p.unbilled_receivable.amount),
                 "credits": [[k, str(m.amount)] for k, m in p.credits]}
                for p in sorted(revenue.positions(entity, day),
                                key=lambda p: p.subscription_contract_id)]
            for entity in entities for day in POSITION_DAYS},
        "invoices": [{"id": s.id, "number": s.number, "issue_date": s.issue_date.isoformat(),
                      "contract_version": s.contract_version, "total": str(s.total.amount),
                      "credited": str(s.credited.amount), "paid": str(s.paid.amount),
                      "due": str(s.amount_due.amount), "currency": s.total.currency}
                     for s in billing.invoices()],
    }


BOOKS = ("trial_balance", "journal_entries", "periods", "revenue_positions", "invoices")


def hub_state(engine: Engine) -> dict[str, Any]:
    with reading(engine) as conn:
        return {
            "events": [dict(r) for r in conn.execute(select(
                events.c.event_id, events.c.type, events.c.status)
                .order_by(events.c.position)).mappings()],
            "raw_events": [dict(r) for r in conn.execute(select(
                raw_events.c.id, raw_events.c.source, raw_events.c.status,
                raw_events.c.error_code).order_by(raw_events.c.id)).mappings()],
            "deliveries": [dict(r) for r in conn.execute(select(
                deliveries.c.event_id, deliveries.c.target, deliveries.c.delivery_key,
                deliveries.c.status, deliveries.c.result).order_by(deliveries.c.id)).mappings()],
            "exceptions": [dict(r) for r in conn.execute(select(
                exceptions.c["class"], exceptions.c.status, exceptions.c.fingerprint)
                .order_by(exceptions.c.id)).mappings()],
        }


def expected_hub_state() -> dict[str, Any]:
    return {
        "events": [{k: e[k] for k in ("event_id", "type", "status")}
                   for e in EXPECTED["events"]],
        "raw_events": EXPECTED["raw_events"],
        "deliveries": [{"event_id": d["event_id"], "target": d["target"],
                        "delivery_key": d["idempotency_key"], "status": d["status"],
                        "result": d["result"]} for d in EXPECTED["deliveries"]],
        "exceptions": [{k: e[k] for k in ("class", "status", "fingerprint")}
                       for e in EXPECTED["exceptions"]],
    }


def receipts(state: dict[str, Any]) -> dict[str, Any]:
    """Delivery key -> (status, the target's id for the document)."""
    return {d["delivery_key"]: (d["status"], jsonutil.loads(d["result"])["external_id"])
            for d in state["deliveries"]}


def stored(legacy: Legacy) -> dict[str, Envelope]:
    """Every stored event, read back typed, by source_event_id."""
    with reading(legacy.engine) as conn:
        found = event_log.get_many(conn, [e["event_id"] for e in EXPECTED["events"]])
    return {env.source_event_id: env for env in found.values()}


def _event(source_event_id: str) -> dict[str, Any]:
    return next(e for e in EXPECTED["events"] if e["source_event_id"] == source_event_id)


# -- a. every stored event reads back typed ----------------------------------------------------

def test_every_stored_event_reads_back_typed_with_its_ids(legacy: Legacy) -> None:
    envelopes = stored(legacy)
    assert len(envelopes) == len(EXPECTED["events"])
    for row in EXPECTED["events"]:
        env = envelopes[row["source_event_id"]]
        cls = event_class(row["type"])
        assert isinstance(env.event, cls), row["event_id"]
        assert (env.event_id, env.type, env.source, env.correlation_id, env.causation_id,
                env.business_key) == (row["event_id"], row["type"], row["source"],
                                      row["correlation_id"], row["causation_id"],
                                      row["idempotency_key"])
        assert (env.aggregate.type, env.aggregate.id, env.aggregate.version) == (
            row["aggregate_type"], row["aggregate_id"], row["aggregate_version"])
        assert env.schema_version == cls.schema_version()
        env.event.check_aggregate(env.aggregate)  # the document is the aggregate stored


def test_events_stored_in_the_current_schema_encode_to_the_stored_payload(
        legacy: Legacy) -> None:
    """Where no upcaster applies, the one codec writes exactly what the old code's encoders
    stored (billing's outbox, the close's journals, the Stripe mapper), so the stored payload
    hash still finds a redelivered version (de-duplication). Bodies a sender wrote by hand
    (intake source `canonical`) are stored as sent, so they are left out."""
    with reading(legacy.engine) as conn:
        rows = {r.event_id: r for r in conn.execute(select(
            events.c.event_id, events.c.schema_version, events.c.payload,
            events.c.payload_hash, raw_events.c.source.label("intake")).join(
            raw_events, raw_events.c.id == events.c.raw_event_id))}
    envelopes = stored(legacy)
    unchanged = [env for env in envelopes.values()
                 if rows[env.event_id].schema_version == env.schema_version
                 and rows[env.event_id].intake != "canonical"]
    assert {env.type for env in unchanged} >= {
        EventType.INVOICE_ISSUED, EventType.PAYMENT_APPLIED, EventType.CREDIT_MEMO_ISSUED,
        EventType.REFUND_ISSUED, EventType.USAGE_RECORDED, EventType.USAGE_RATED,
        EventType.REVENUE_JOURNAL_RECORDED, EventType.CONTRACT_CREATED}
    for env in unchanged:
        row = rows[env.event_id]
        assert codec.encode_event(env.event) == jsonutil.loads(row.payload), env.source_event_id
        assert event_log.event_hash(env) == row.payload_hash, env.source_event_id


def test_stripe_set_ops_are_upcast_to_attribute_changes(legacy: Legacy) -> None:
    envelopes = stored(legacy)
    amended = envelopes[STRIPE_AMENDED]
    assert _event(STRIPE_AMENDED)["schema_version"] == 1
    assert isinstance(amended.event, ContractAmended)
    changes = amended.event.amendment.changes
    assert [(c.op, c.attribute, c.line_id) for c in changes] == [
        (ChangeOp.ATTRIBUTE_CHANGED, "items", CONTRACT_LEVEL),
        (ChangeOp.ATTRIBUTE_CHANGED, "quantity", CONTRACT_LEVEL)]
    assert changes[1].before == "10" and changes[1].after is None
    assert amended.event.amendment.contract.lines[0].quantity == 15
    cancelled = envelopes[STRIPE_CANCELLED]
    assert _event(STRIPE_CANCELLED)["status"] == EventStatus.REJECTED
    assert isinstance(cancelled.event, ContractCancelled)
    assert [(c.op, c.line_id) for c in cancelled.event.amendment.changes] == [
        (ChangeOp.CANCELLED, CONTRACT_LEVEL)]


def test_billing_change_ops_read_back_as_change_ops(legacy: Legacy) -> None:
    envelopes = stored(legacy)

    def ops(source_event_id: str) -> list[tuple[ChangeOp, str, str | None, str | None]]:
        amendment = envelopes[source_event_id].event.document
        assert isinstance(amendment, ContractAmendment)
        return [(c.op, c.line_id, c.before, c.after) for c in amendment.changes]

    upgrade = ops("subscription_contract:con_acme_2026:v2")
    assert [(op, line) for op, line, _b, _a in upgrade] == [
        (ChangeOp.LINE_ADDED, "ln_analytics"), (ChangeOp.QUANTITY_CHANGED, "ln_seats")]
    assert upgrade[1][2:] == ("500", "800")
    assert ops("subscription_contract:con_berlin_2026:v2") == [
        (ChangeOp.QUANTITY_CHANGED, "ln_seats", "40", "30")]
    assert ops("subscription_contract:con_berlin_2026:v3") == [
        (ChangeOp.CANCEL_AT_TERM_END, CONTRACT_LEVEL, "renews", "ends 2027-01-01")]
    parked = ops(PARKED)
    assert parked == [(ChangeOp.QUANTITY_CHANGED, "ln_seats", "12", "15")]


def test_the_v1_invoice_reads_back_in_decimal_money(legacy: Legacy) -> None:
    env = stored(legacy)["legacy:inv_legacy_0001"]
    assert isinstance(env.event, InvoiceIssued)
    invoice = env.event.invoice
    assert invoice.total == Money.of("1200.00", "USD")
    assert invoice.subtotal == Money.of("1200.00", "USD")
    assert [line.amount for line in invoice.lines] == [Money.of("1200.00", "USD")]
    # The old hub upcast on intake: the event log holds v2, the raw log the v1 body (test d).
    assert _event("legacy:inv_legacy_0001")["schema_version"] == 2


# -- b. running and replaying changes nothing -----------------------------------------------

def test_the_current_code_reads_the_books_the_old_code_wrote(legacy: Legacy) -> None:
    now = books(legacy)
    for key in BOOKS:
        assert now[key] == EXPECTED[key], key
    assert hub_state(legacy.engine) == expected_hub_state()


def test_run_and_replay_of_everything_change_nothing(legacy: Legacy) -> None:
    hub = legacy.finance.hub
    before = hub_state(legacy.engine)
    first = hub.run_until_idle()
    assert first.raw_processed == 0 and first.deliveries_attempted == 0
    replayed = hub.replay(ReplayFilter(everything=True))
    accepted = [e for e in EXPECTED["events"] if e["status"] == EventStatus.ACCEPTED]
    assert replayed.events == len(accepted) and replayed.added == 0
    legacy.settle()
    after = hub_state(legacy.engine)
    now = books(legacy)
    for key in BOOKS:
        assert now[key] == EXPECTED[key], key
    assert after["events"] == before["events"]  # statuses as they were; nothing new
    assert after["raw_events"] == before["raw_events"]
    assert after["exceptions"] == before["exceptions"]  # no new exception
    assert receipts(after) == receipts(before)  # done stays done, with the same receipts
    assert {status for status, _id in receipts(after).values()} == {DeliveryStatus.DONE}


# -- c. the parked event waits for its missing version --------------------------------------

def test_the_parked_event_is_released_when_its_missing_version_arrives(
        legacy: Legacy) -> None:
    hub = legacy.finance.hub
    hub.run_until_idle()
    parked = _event(PARKED)
    with reading(legacy.engine) as conn:
        assert event_log.applied_version(conn, "subscription_contract", "con_legacy_0001") == 1
        status = conn.execute(select(events.c.status).where(
            events.c.event_id == parked["event_id"])).scalar_one()
    assert status == EventStatus.PARKED
    body = (LEGACY / f"finsync-{COMMIT}.missing-version.json").read_bytes()
    hub.intake.store([RawIn("canonical", body, {})])
    legacy.settle()
    with reading(legacy.engine) as conn:
        assert event_log.applied_version(conn, "subscription_contract", "con_legacy_0001") == 3
        rows = {r.source_event_id: r for r in conn.execute(select(
            events.c.source_event_id, events.c.event_id, events.c.status).where(
            events.c.aggregate_id == "con_legacy_0001"))}
        sent = conn.execute(select(deliveries.c.event_id, deliveries.c.target,
                                   deliveries.c.status).where(deliveries.c.event_id.in_(
            [rows[MISSING].event_id, rows[PARKED].event_id]))).all()
    assert rows[MISSING].status == EventStatus.ACCEPTED
    assert rows[PARKED].status == EventStatus.ACCEPTED
    assert sorted((r.event_id, r.target, r.status) for r in sent) == sorted(
        (rows[sid].event_id, "revrec", DeliveryStatus.DONE) for sid in (MISSING, PARKED))
    assert hub_state(legacy.engine)["exceptions"] == expected_hub_state()["exceptions"]
    position = next(p for p in legacy.finance.ports.revenue().positions("le_us", AS_OF)
                    if p.subscription_contract_id == "con_legacy_0001")
    old = next(p for p in EXPECTED["revenue_positions"][f"le_us@{AS_OF.isoformat()}"]
               if p["contract"] == "con_legacy_0001")
    assert position.transaction_price.amount > Money.of(old["transaction_price"],
                                                        "USD").amount


# -- d. the raw events map again to the events stored --------------------------------------

def test_every_raw_event_maps_again_to_the_events_it_gave(legacy: Legacy) -> None:
    hub = legacy.finance.hub
    envelopes = {env.event_id: env for env in stored(legacy).values()}
    with reading(legacy.engine) as conn:
        gave: dict[int, set[str]] = {}
        for raw_id, event_id in conn.execute(select(events.c.raw_event_id, events.c.event_id)):
            gave.setdefault(raw_id, set()).add(event_id)
        for raw_id, event_id in conn.execute(select(duplicates.c.raw_event_id,
                                                    duplicates.c.duplicate_of)):
            gave.setdefault(raw_id, set()).add(event_id)
        raws = [raw_log.get(conn, row["id"]) for row in EXPECTED["raw_events"]]
    for raw in raws:
        assert raw is not None
        if raw.status == "rejected":
            with pytest.raises(MappingError) as error:
                hub.mappers.map(raw)
            assert error.value.code == "invalid_json"
            continue
        mapped = hub.mappers.map(raw)
        assert {env.event_id for env in mapped} == gave.get(raw.id, set()), raw.id
        for env in mapped:
            was = envelopes[env.event_id]
            assert env.event == was.event, env.source_event_id
            assert (env.type, env.source, env.source_event_id, env.aggregate,
                    env.correlation_id, env.causation_id) == (
                was.type, was.source, was.source_event_id, was.aggregate,
                was.correlation_id, was.causation_id), env.source_event_id


# -- e. periods the old code closed stay closed, their journals posted once -----------------

def test_a_period_the_old_code_closed_closes_again_as_already_closed(legacy: Legacy) -> None:
    """The old close posted one revenue journal per entity and period, its id derived from
    (entity, period); journals are now per currency, their ids from (entity, period,
    currency). A second close of such a period finds each currency's journal posted under
    the id the old close sent it with, and posts nothing."""
    close = legacy.finance.close
    for entity in ("le_us", "le_eu"):
        sent = close.sent_journals(entity, "2026-01")
        assert [j.state.value for j in sent] == ["posted"], entity
        result = close.close(entity, "2026-01", "controller")
        assert result.status == "already_closed", entity
        assert [j.id for j in result.journals] == [sent[0].entry.id], entity
        assert result.journals[0].lines == sent[0].entry.lines, entity
    assert hub_state(legacy.engine)["exceptions"] == expected_hub_state()["exceptions"]
