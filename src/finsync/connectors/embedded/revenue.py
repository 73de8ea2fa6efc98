"""The embedded revenue engine behind the revenue port.

The service already applies events idempotently by key; this adapter maps the hub's calls
to service calls, answers to receipts (with each schedule's versioned reference for the
hub's cross-references) and the engine's errors to what the hub can act on.

References in a receipt: the subscription contract is known in this system as its revenue
contract (`rc_…`); each schedule revision `<contract id>/<obligation id>@v<n>` as
`sch_…@v<n>`, so every ERP revenue journal line traces to a schedule version and back to
the amendment that made it.

Its changes are calls across the revenue port, in process: each goes to the call log
(`connectors.calls`) as a `port` call, like a remote engine's requests would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Subject, recorded
from finsync.connectors.ports import (
    ContractPrice,
    DeliveryContext,
    PositionTotals,
    Receipt,
    Reference,
    RevenueAdjustment,
    RevenuePosition,
    Sent,
)
from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.errors import DomainError, ExceptionClass, PermanentError, TransientError
from finsync.domain.invoice import CreditMemo, Invoice, RatedUsage, UsageRecord
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.domain.revenue import RevenueSchedule
from finsync.systems.revrec import errors as revenue_errors
from finsync.systems.revrec.asked import (
    Asked,
    asked_book,
    asked_credit_memo,
    asked_event,
    asked_invoice,
    asked_modify,
)
from finsync.systems.revrec.event import UsageRecorded
from finsync.systems.revrec.position import Position
from finsync.systems.revrec.service import Applied, RevenueService

T = TypeVar("T")

# What a person does about each refusal decides its class.
_CLASSES: tuple[tuple[type[DomainError], ExceptionClass], ...] = (
    (revenue_errors.IdempotencyMismatchError, ExceptionClass.DUPLICATE_EVENT),
    (revenue_errors.MissingStandaloneSellingPriceError, ExceptionClass.MASTER_DATA_MISMATCH),
    (revenue_errors.ContractMismatchError, ExceptionClass.MASTER_DATA_MISMATCH),
    (revenue_errors.AccountMappingError, ExceptionClass.MAPPING_ERROR),
    (DomainError, ExceptionClass.MASTER_DATA_MISMATCH),
)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except revenue_errors.RevenueBusyError as exc:
        raise TransientError(str(exc)) from exc
    except revenue_errors.UnknownObligationError as exc:
        # Billed before the amendment that creates the obligation reached the engine: the
        # reference is missing for now; retried, and replayable once it exists.
        raise TransientError(str(exc), exception_class=ExceptionClass.MISSING_REVREC_REFERENCE) \
            from exc
    except revenue_errors.UnknownRevenueContractError as exc:
        # Events of different aggregates are not ordered: the contract or invoice may come.
        raise TransientError(str(exc), exception_class=ExceptionClass.SEQUENCING_ERROR) \
            from exc
    except OperationalError as exc:
        raise TransientError(f"revenue database unavailable: {exc.orig}") from exc
    except DomainError as exc:
        klass = next(k for error, k in _CLASSES if isinstance(exc, error))
        raise PermanentError(f"{exc.code}: {exc}", exception_class=klass) from exc


def _receipt(applied: Applied, document: Reference | None = None) -> Receipt:
    contract = applied.subscription_contract_id
    refs = [Reference(contract, "revenue_contract", applied.revenue_contract_id)]
    refs += [Reference(f"{contract}/{ob}@v{ref.rsplit('@v', 1)[1]}", "revenue_schedule", ref)
             for ob, ref in applied.references]
    if document is not None:
        refs.append(document)
    return Receipt(applied.revenue_contract_id, tuple(refs),
                   {"replayed": str(applied.replayed).lower(), "event_id": applied.event_id,
                    **dict(applied.detail)})


class EmbeddedRevenue:
    def __init__(self, system: str, service: RevenueService, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system, self._service, self._recorder = system, service, recorder

    def apply_contract(self, contract: SubscriptionContract, amendment: ContractAmendment | None,
                       ctx: DeliveryContext) -> Receipt:
        if amendment is None:
            return self._call("apply_contract", contract.id, ctx,
                              lambda: self._service.book(contract, ctx.delivery_key,
                                                         ctx.event_id))
        return self._call("apply_contract", contract.id, ctx,
                          lambda: self._service.modify(amendment, ctx.delivery_key, ctx.event_id))

    def record_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._call("record_invoice", invoice.id, ctx,
                          lambda: self._service.record_invoice(invoice, ctx.delivery_key,
                                                               ctx.event_id), invoice)

    def apply_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._call("apply_credit_memo", memo.id, ctx,
                          lambda: self._service.apply_credit_memo(memo, ctx.delivery_key,
                                                                  ctx.event_id), memo)

    def record_usage(self, usage: RatedUsage, ctx: DeliveryContext) -> Receipt:
        """Billable usage of a rating period, as incurred on the period's last day, at the
        amount billing rated (the included quantity is part of the fixed fee, so only what is
        billable is variable consideration)."""
        return self._call("record_usage", usage.id, ctx, lambda: self._service.apply(
            usage.contract_id, _usage_event(usage, ctx), ctx.delivery_key))

    def answered(self, sent: Sequence[Sent]) -> Mapping[str, Receipt]:
        """The deliveries the engine applied already with these very documents, answered in
        one read (`RevenueService.answered`), each with the receipt its call would give."""
        asks = {s.ctx.delivery_key: (s, ask) for s in sent
                if (ask := _asked(s.document, s.ctx)) is not None}
        if not asks:
            return {}
        found = self._read(lambda: self._service.answered([a for _, a in asks.values()]))
        if not found:
            return {}
        subjects = tuple(Subject(asks[k][0].ctx.correlation_id, k) for k in found)
        with recorded(self._recorder, self.system, Channel.PORT, "answered", "RevenuePort",
                      subjects) as exchange:
            exchange.request({"keys": len(asks)})
            exchange.response({"answered": len(found)})
        return {key: _receipt(applied, _document(asks[key][0].document, applied))
                for key, applied in found.items()}

    def schedules(self, subscription_contract_id: str) -> Sequence[RevenueSchedule]:
        found = self._read(lambda: self._service.schedules(subscription_contract_id))
        return [s.to_revenue_schedule() for s in found]

    def period_journals(self, legal_entity: str, period: Period,
                        request_id: str) -> Sequence[JournalEntry]:
        def journals() -> list[JournalEntry]:
            entries = self._service.close_journals(legal_entity, period, request_id)
            self._service.record_journal_request(request_id, legal_entity, period, entries)
            return list(entries)

        return self._read(journals)

    def positions(self, legal_entity: str, day: date) -> Sequence[RevenuePosition]:
        return [_position(found)
                for found in self._read(lambda: self._service.positions(legal_entity, day))]

    def positions_over(self, legal_entity: str,
                       days: Sequence[date]) -> Iterator[Sequence[RevenuePosition]]:
        """Per revenue contract, its positions before each of `days` (in that order), read
        from the engine's position rows a chunk of contracts at a time."""
        with _translated():
            for found in self._service.positions_over(legal_entity, days):
                yield [_position(p) for p in found]

    def recognised_over(self, legal_entity: str,
                        days: Sequence[date]) -> dict[str, list[Money]]:
        found = self._read(lambda: self._service.recognised_over(legal_entity, days))
        return {cur: [Money.from_minor(v, cur) for v in per] for cur, per in found.items()}

    def position_totals(self, legal_entity: str, day: date) -> Sequence[PositionTotals]:
        found = self._read(lambda: self._service.position_totals(legal_entity, day))
        return [PositionTotals(t.currency, t.contracts, t.balances.billed, t.balances.recognised,
                               t.balances.deferred_revenue, t.balances.contract_asset,
                               t.balances.unbilled_receivable, t.credited) for t in found]

    def contract_prices(self, legal_entity: str, day: date) -> Iterator[ContractPrice]:
        """Per contract by subscription contract id, read as one stream."""
        with _translated():
            for p in self._service.contract_prices(legal_entity, day):
                yield ContractPrice(p.subscription_contract_id, p.customer_id,
                                    p.transaction_price, p.credits)

    def adjustments(self, legal_entity: str) -> Sequence[RevenueAdjustment]:
        found = self._read(lambda: self._service.adjustments_by_month(
            legal_entity, date.min, date.max))
        return [RevenueAdjustment(a.booked_in, a.adjusts, a.revenue)
                for _, booked in found for a in booked]

    def account_map(self, legal_entity: str | None = None) -> Mapping[str, str]:
        codes = (self._service.accounts if legal_entity is None
                 else self._service.accounts_of(legal_entity))
        return codes.as_dict()

    def find_receipt(self, key: str) -> Receipt | None:
        applied = self._read(lambda: self._service.find(key))
        if applied is None:
            return None
        if not applied.revenue_contract_id:  # a period-journal request
            return Receipt(applied.event_id, (), {"replayed": "true", **dict(applied.detail)})
        return _receipt(applied)

    def _call(self, method: str, document_id: str, ctx: DeliveryContext,
              change: Callable[[], Applied],
              document: object = None) -> Receipt:
        with recorded(self._recorder, self.system, Channel.PORT, method, "RevenuePort",
                      (Subject(ctx.correlation_id, ctx.delivery_key),)) as exchange:
            exchange.request({"document": document_id, "key": ctx.delivery_key})
            with _translated():
                applied = change()
            exchange.response({"external_id": applied.revenue_contract_id,
                               "replayed": applied.replayed})
        return _receipt(applied, _document(document, applied))

    @staticmethod
    def _read(call: Callable[[], T]) -> T:
        with _translated():
            return call()


def _document(document: object, applied: Applied) -> Reference | None:
    """The reference a receipt gives the document it records (invoices and credit memos)."""
    if isinstance(document, Invoice):
        return Reference(document.id, "invoice", f"{applied.revenue_contract_id}/{document.id}")
    if isinstance(document, CreditMemo):
        return Reference(document.id, "credit_memo",
                         f"{applied.revenue_contract_id}/{document.id}")
    return None


def _usage_event(usage: RatedUsage, ctx: DeliveryContext) -> UsageRecorded:
    """Billable usage of a rating period, as incurred on the period's last day."""
    record = UsageRecord(usage.id, usage.contract_id, usage.product_id, usage.billable,
                         usage.period_end - timedelta(days=1))
    return UsageRecorded(ctx.event_id, record, usage.amount)


def _asked(document: object, ctx: DeliveryContext) -> Asked | None:
    """What delivering `document` asks the engine, as its call would ask it."""
    key = ctx.delivery_key
    if isinstance(document, SubscriptionContract):
        return asked_book(document, key)
    if isinstance(document, ContractAmendment):
        return asked_modify(document, key)
    if isinstance(document, Invoice):
        return asked_invoice(document, key, ctx.event_id)
    if isinstance(document, CreditMemo):
        return asked_credit_memo(document, key, ctx.event_id)
    if isinstance(document, RatedUsage):
        return asked_event(_usage_event(document, ctx), key)
    return None


def _position(found: Position) -> RevenuePosition:
    at = found.balances
    return RevenuePosition(found.subscription_contract_id, found.customer_id, found.currency,
                           found.transaction_price, at.billed, at.recognised,
                           at.deferred_revenue, at.contract_asset, at.unbilled_receivable,
                           found.credits)
