"""The embedded revenue engine's service API: keep each revenue contract's state, apply
events to it idempotently, and answer schedules, waterfall, RPO, balances and journals.

Rules:
- One transaction per call; a refused call writes nothing.
- A revenue contract's state is stored as a serialised value (`serial`) with a row version;
  each applied event also writes a tracking row (contract, event id) with a unique key, in
  the same transaction, so a concurrent duplicate fails instead of applying twice.
- Each saved state also brings the contract's position rows up to date (`position_write`,
  only the rows that changed) in the same transaction; positions, journals, waterfalls and
  RPO are read from those rows (`position_report`), never by decoding every state.
- Every change carries the caller's idempotency key. The receipt row holds the key (unique),
  a hash of the body and the answer: the same key again returns the first answer and writes
  nothing; the same key with another body is refused (`IdempotencyMismatchError`).
- SSPs come from the SSP provider (the catalog owner): one per product of the contract, in
  force on the contract start (booking) or the modification date.
- An invoice that names no contract (a one-off) is booked as its own point-in-time revenue
  contract, under the invoice's id, with its billings, in one change (`point_in_time`);
  recording it again changes nothing.
- Modification facts not supplied are derived by `facts.derive_facts` (documented there).
- Events apply in canonical order (`order`): each one is kept with the contract
  (`event_log`, same transaction); one dated before an event already applied rebuilds the
  contract from its baseline in that order, schedule versions carried on (never reused).
- Recognition terms (patterns per product, granularity…) come from the terms provider given
  at construction; the default is ratable by day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry
from finsync.systems.revrec import (
    contra_report,
    event_log,
    journal_store,
    point_in_time,
    position_store,
    position_write,
    receipt,
)
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.account_map import AccountMaps
from finsync.systems.revrec.asked import Asked, answered, asked_book, asked_modify
from finsync.systems.revrec.balance import ContractBalances
from finsync.systems.revrec.booking import revenue_contract_id
from finsync.systems.revrec.contra_report import BookedAdjustment, EntityRevenue
from finsync.systems.revrec.engine import book_contract
from finsync.systems.revrec.errors import (
    MissingStandaloneSellingPriceError,
    ModificationError,
    RevenueBusyError,
    UnknownRevenueContractError,
)
from finsync.systems.revrec.event import (
    ContractBooked,
    ContractModified,
    CreditMemoApplied,
    CreditTreatment,
    InvoiceRecorded,
    RevenueEvent,
)
from finsync.systems.revrec.facts import derive_facts
from finsync.systems.revrec.journal import AccountMap
from finsync.systems.revrec.journal_book import JournalBook
from finsync.systems.revrec.modification import ModificationFacts
from finsync.systems.revrec.position import Position, contract_positions
from finsync.systems.revrec.position_report import (
    CurrencyPositions,
    EntityBalances,
    EntityWaterfall,
    PositionReports,
    PricedContract,
)
from finsync.systems.revrec.receipt import Applied
from finsync.systems.revrec.schedule import (
    ObligationSchedule,
    RemainingPerformanceObligations,
    Waterfall,
    schedules,
)
from finsync.systems.revrec.serial import dumps_state, encode, loads_state
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import RecognitionTerms

SspProvider = Callable[[str, date], StandaloneSellingPrice | None]
TermsProvider = Callable[[SubscriptionContract], RecognitionTerms]
DEFAULT_ACCOUNTS = {"revenue": "4000", "deferred_revenue": "2400", "contract_asset": "1250",
                    "unbilled_receivable": "1260", "contra_revenue": "4910",
                    "refund_liability": "2450"}



@dataclass(frozen=True, slots=True)
class _Loaded:
    state: RevenueContractState
    row_version: int


Step = Callable[[Connection, _Loaded | None], RevenueContractState]


class RevenueService:
    def __init__(self, engine: Engine, ssp_provider: SspProvider,
                 terms: TermsProvider | None = None,
                 accounts: Mapping[str, str] | None = None, *,
                 reader: Engine | None = None,
                 entity_accounts: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """`reader`: the engine its position reports read through (default `engine`); one
        that takes no write lock keeps them from waiting behind changes. `entity_accounts`:
        a legal entity's accounts that differ from `accounts` (`AccountMaps`)."""
        self.engine, self._ssp = engine, ssp_provider
        self._terms = terms or (lambda _contract: RecognitionTerms())
        self._maps = AccountMaps.of(accounts or DEFAULT_ACCOUNTS, entity_accounts or {})
        self._accounts = self._maps.default
        self._reports = PositionReports(reader or engine)
        self._journals = JournalBook(engine, self._reports, self._maps.of_entity)

    # -- changes ------------------------------------------------------------------------
    def book(self, contract: SubscriptionContract, key: str, event_id: str) -> Applied:
        def step(_conn: Connection, loaded: _Loaded | None) -> RevenueContractState:
            if loaded is None:
                ssps = self._ssps(contract.lines, contract.start_date)
                return book_contract(ContractBooked(event_id, contract, ssps,
                                                    self._terms(contract)))
            if event_id in loaded.state.applied_event_ids or loaded.state.contract == contract:
                return loaded.state
            raise ModificationError(f"{contract.id} is already booked at version "
                                    f"{loaded.state.contract.version}; send an amendment")

        return self._change(key, "contract", contract.id, asked_book(contract, key).body,
                            contract.id, step, event_id)

    def modify(self, amendment: ContractAmendment, key: str, event_id: str,
               facts: ModificationFacts | None = None) -> Applied:
        def step(conn: Connection, loaded: _Loaded | None) -> RevenueContractState:
            state = self._require(loaded, amendment.contract_id)
            ssps = self._ssps((*state.contract.lines, *amendment.contract.lines),
                              amendment.effective_date)
            chosen = facts or derive_facts(state.contract, amendment, ssps, state.terms)
            return event_log.arrive(conn, state,
                                    ContractModified(event_id, amendment, chosen, ssps))

        body = asked_modify(amendment, key, facts).body
        return self._change(key, "amendment", amendment.id, body, amendment.contract_id, step,
                            event_id)

    def record_invoice(self, invoice: Invoice, key: str, event_id: str) -> Applied:
        """An invoice's billings; an invoice that names no contract (a one-off) is booked as
        its own point-in-time contract with them (`point_in_time`)."""
        if invoice.contract_id is None:
            return self._record_one_off(invoice, key, event_id)
        return self.apply(invoice.contract_id, InvoiceRecorded(event_id, invoice), key,
                          document=invoice.id)

    def _record_one_off(self, invoice: Invoice, key: str, event_id: str) -> Applied:
        def step(_conn: Connection, loaded: _Loaded | None) -> RevenueContractState:
            if loaded is not None:
                return loaded.state  # booked and billed with its invoice: nothing more to do
            contract = point_in_time.contract_of(invoice)
            return point_in_time.book_invoice(event_id, invoice,
                                              self._ssps(contract.lines, invoice.issue_date),
                                              self._terms(contract))

        event = InvoiceRecorded(event_id, invoice)
        applied = self._change(key, type(event).__name__, event_id, event, invoice.id, step,
                               event_id)
        self._link_document(invoice.id, applied.revenue_contract_id)
        return applied

    def apply_credit_memo(self, memo: CreditMemo, key: str, event_id: str,
                          treatment: CreditTreatment | None = None) -> Applied:
        with self.engine.connect() as conn:
            rc_id = conn.execute(select(t.documents.c.revenue_contract_id).where(
                t.documents.c.document_id == memo.invoice_id)).scalar_one_or_none()
            sub_id = None if rc_id is None else conn.execute(
                select(t.contracts.c.subscription_contract_id).where(
                    t.contracts.c.id == rc_id)).scalar_one_or_none()
        if sub_id is None:
            raise UnknownRevenueContractError(f"credit memo {memo.id}: invoice "
                                              f"{memo.invoice_id} is not known yet")
        return self.apply(sub_id, CreditMemoApplied(event_id, memo, treatment), key)

    def apply(self, subscription_contract_id: str, event: RevenueEvent, key: str,
              document: str | None = None) -> Applied:
        """Any other event (delivery, progress, usage, price change, refund…)."""
        def step(conn: Connection, loaded: _Loaded | None) -> RevenueContractState:
            return event_log.arrive(conn, self._require(loaded, subscription_contract_id),
                                    event)

        applied = self._change(key, type(event).__name__, event.event_id, event,
                               subscription_contract_id, step, event.event_id)
        if document is not None:
            self._link_document(document, applied.revenue_contract_id)
        return applied

    # -- reads --------------------------------------------------------------------------
    def answered(self, asks: Sequence[Asked]) -> dict[str, Applied]:
        """The answers these changes would get because each was made already, in one read
        (`asked.answered`); the others are left to the changes themselves."""
        if not asks:
            return {}
        with self.engine.connect() as conn:
            return answered(conn, asks)

    def find(self, key: str) -> Applied | None:
        with self.engine.connect() as conn:
            answer = conn.execute(select(t.receipts.c.answer).where(
                t.receipts.c.idempotency_key == key)).scalar_one_or_none()
        return None if answer is None else receipt.answer_of(answer, replayed=True)

    def state(self, subscription_contract_id: str) -> RevenueContractState | None:
        with self.engine.connect() as conn:
            loaded = _load(conn, subscription_contract_id)
        return None if loaded is None else loaded.state

    def schedules(self, subscription_contract_id: str) -> tuple[ObligationSchedule, ...]:
        state = self.state(subscription_contract_id)
        return () if state is None else schedules(state)

    def waterfall(self, subscription_contract_id: str, start: date, end: date) -> Waterfall:
        return self._reports.waterfall(subscription_contract_id, start, end)

    def remaining_performance_obligations(
            self, subscription_contract_id: str, as_of: date) -> RemainingPerformanceObligations:
        return self._reports.remaining_performance_obligations(subscription_contract_id, as_of)

    def balances(self, subscription_contract_id: str, day: date) -> ContractBalances:
        return self._reports.balances(subscription_contract_id, day)

    def positions(self, legal_entity: str, day: date) -> list[Position]:
        """Every revenue contract of the entity at 00:00 of `day`, in id order."""
        return self._reports.positions(legal_entity, day)

    def positions_over(self, legal_entity: str,
                       days: Sequence[date]) -> Iterator[list[Position]]:
        """Per revenue contract of the entity (in id order), its positions at each day."""
        return self._reports.positions_over(legal_entity, days)

    def recognised_over(self, legal_entity: str, days: Sequence[date]) -> dict[str, list[int]]:
        """Per currency, the entity's revenue recognised before each month start of `days`
        (ascending), in minor units."""
        return self._reports.recognised_over(legal_entity, days)

    def position_totals(self, legal_entity: str, day: date) -> list[CurrencyPositions]:
        """Per currency, the entity's contracts at 00:00 of `day` summed."""
        return self._reports.totals(legal_entity, day)

    def contract_prices(self, legal_entity: str, day: date) -> Iterator[PricedContract]:
        """Per contract (by subscription contract id, code-point order), its price and
        credits at 00:00 of `day`."""
        return self._reports.prices(legal_entity, day)

    def period_journals(self, legal_entity: str, period: Period) -> tuple[JournalEntry, ...]:
        """The period's revenue journals over every revenue contract of the entity, one per
        currency: as stored by its close, else as they would be now (`journal_book`)."""
        return self._journals.journals(legal_entity, period)

    def close_journals(self, legal_entity: str, period: Period,
                       request_id: str) -> tuple[JournalEntry, ...]:
        """The period's journals as a close posts them: stored on the first request and
        answered as stored ever after (`journal_book`)."""
        with _guarded():
            return self._journals.close(legal_entity, period, request_id)

    def revenue_by_month(self, legal_entity: str, start: date, end: date) -> EntityWaterfall:
        """Revenue of the entity per calendar month and currency (the waterfall's total)."""
        return self._reports.revenue_by_month(legal_entity, start, end)

    def gross_and_net_by_month(self, legal_entity: str, start: date,
                               end: date) -> EntityRevenue:
        """Gross, contra and net revenue of the entity per month and currency
        (`contra_report`; net is `revenue_by_month`)."""
        net = self._reports.revenue_by_month(legal_entity, start, end)
        contra = contra_report.contra_by_month(self._reports.engine, legal_entity, start, end)
        return contra_report.gross_and_net(net, contra)

    def adjustments_by_month(self, legal_entity: str, start: date, end: date
                             ) -> tuple[tuple[str, tuple[BookedAdjustment, ...]], ...]:
        """The catch-up adjustments stored journals of those months booked for closed
        periods, per currency (`contra_report`)."""
        return contra_report.adjustments_by_month(self.engine, legal_entity, start, end)

    def balances_by_month(self, legal_entity: str, start: date, end: date) -> EntityBalances:
        """The entity's balances at each month start from `start`'s month to `end`'s end,
        per currency, and the credits issued per month: the deferred revenue roll-forward."""
        return self._reports.balances_by_month(legal_entity, start, end)

    def contract_heads(self, legal_entity: str, after: str = "",
                       limit: int = 100) -> list[tuple[str, str, str, str, int]]:
        """The entity's revenue contracts after `after` in id order (at most `limit`), not
        decoded: (revenue contract, subscription contract, customer, currency, version)."""
        with self.engine.connect() as conn:
            return position_store.contract_heads(conn, legal_entity, after, limit)

    def entity_remaining_performance_obligations(
            self, legal_entity: str, as_of: date) -> dict[str, RemainingPerformanceObligations]:
        """RPO of the entity at `as_of`, per currency."""
        return self._reports.remaining_by_currency(legal_entity, as_of)

    def states(self, legal_entity: str) -> list[RevenueContractState]:
        """Every revenue contract of the entity, in id order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.contracts.c.state).where(
                t.contracts.c.legal_entity == legal_entity).order_by(t.contracts.c.id))
            return [loads_state(text) for (text,) in rows]

    @property
    def accounts(self) -> AccountMap:
        return self._accounts

    def accounts_of(self, legal_entity: str) -> AccountMap:
        return self._maps.of_entity(legal_entity)

    def record_journal_request(self, key: str, legal_entity: str, period: Period,
                               entries: Sequence[JournalEntry]) -> None:
        """Remember that `key` asked for the period's journals (the journals themselves are
        stored by `close_journals`)."""
        answer = Applied(key, "", "", " ".join(entry.id for entry in entries),
                         detail=(("legal_entity", legal_entity),
                                 ("period", f"{period.start}..{period.end}")))
        body = receipt.digest({"legal_entity": legal_entity, "period": encode(period)})
        with _guarded(), self.engine.begin() as conn:
            if receipt.find(conn, key, body) is None:
                receipt.store(conn, key, "period_journal", legal_entity, body, answer)

    # -- internals ----------------------------------------------------------------------
    def _ssps(self, lines: Iterable[ContractLine],
              on: date) -> tuple[StandaloneSellingPrice, ...]:
        products = sorted({li.product_id for li in lines})
        found = (self._ssp(product, on) for product in products)
        ssps = tuple(ssp for ssp in found if ssp is not None)
        currencies = sorted({ssp.amount.currency for ssp in ssps})
        if len(currencies) > 1:  # weighed by their ratio: amounts of two currencies never are
            raise MissingStandaloneSellingPriceError(
                f"the SSPs of {', '.join(products)} on {on} are in {', '.join(currencies)}: "
                "a contract's SSPs are weighed against each other, so they share a currency")
        return ssps

    @staticmethod
    def _require(loaded: _Loaded | None, subscription_contract_id: str) -> RevenueContractState:
        if loaded is None:
            raise UnknownRevenueContractError(
                f"no revenue contract for {subscription_contract_id} (not booked yet)")
        return loaded.state

    def _change(self, key: str, kind: str, subject: str, body: object,
                subscription_contract_id: str, step: Step, event_id: str) -> Applied:
        encoded = encode(body)
        digest = receipt.digest(encoded)
        with _guarded(), self.engine.begin() as conn:
            known = receipt.find(conn, key, digest, encoded)
            if known is not None:
                return known
            loaded = _load(conn, subscription_contract_id)
            state = step(conn, loaded)
            if loaded is None or state is not loaded.state:
                _save(conn, loaded, state, event_id)
            if loaded is None:  # booked: the state its event history starts from
                event_log.ensure_baseline(conn, state)
            applied = receipt.applied(key, state, event_id)
            receipt.store(conn, key, kind, subject, digest, applied)
            return applied

    def _link_document(self, document: str, rc_id: str) -> None:
        with _guarded(), self.engine.begin() as conn:
            known = conn.execute(select(t.documents.c.revenue_contract_id).where(
                t.documents.c.document_id == document)).scalar_one_or_none()
            if known is None:
                conn.execute(insert(t.documents), {"document_id": document,
                                                   "revenue_contract_id": rc_id})


@contextmanager
def _guarded() -> Iterator[None]:
    """A unique key hit by a concurrent writer: the caller retries and finds its answer."""
    try:
        yield
    except IntegrityError as exc:
        raise RevenueBusyError(f"concurrent write to the revenue engine: {exc.orig}") from exc


def _load(conn: Connection, subscription_contract_id: str) -> _Loaded | None:
    row = conn.execute(select(t.contracts.c.state, t.contracts.c.row_version).where(
        t.contracts.c.subscription_contract_id == subscription_contract_id)).first()
    return None if row is None else _Loaded(loads_state(row.state), row.row_version)


def _save(conn: Connection, loaded: _Loaded | None, state: RevenueContractState,
          event_id: str) -> None:
    values = {"legal_entity": state.legal_entity, "currency": state.currency,
              "customer_id": state.contract.customer_id,
              "contract_version": state.contract.version, "state": dumps_state(state)}
    if loaded is None:
        conn.execute(insert(t.contracts), {
            "id": state.revenue_contract_id, "subscription_contract_id": state.contract.id,
            "row_version": 1, **values})
    else:
        done = conn.execute(update(t.contracts).where(
            t.contracts.c.id == state.revenue_contract_id,
            t.contracts.c.row_version == loaded.row_version).values(
            row_version=loaded.row_version + 1, **values))
        if done.rowcount != 1:
            raise RevenueBusyError(f"{state.revenue_contract_id} changed under this call")
    conn.execute(insert(t.applied_events), {"revenue_contract_id": state.revenue_contract_id,
                                            "event_id": event_id})
    journal_store.record_change(conn, state, event_id)
    position_write.write(conn, state.revenue_contract_id, contract_positions(state))


__all__ = ["Applied", "RevenueService", "SspProvider", "TermsProvider", "revenue_contract_id"]
