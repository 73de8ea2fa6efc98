"""Decoding canonical payloads (JSON objects) into domain objects.

Rules: money is a decimal string in the document's currency; dates are ISO dates; any
missing or malformed field is a `MappingError` naming its path, never a default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from finsync.domain.catalog import BillingFrequency
from finsync.domain.clock import parse_date
from finsync.domain.contract import (
    ContractAmendment,
    ContractChange,
    ContractLine,
    RampStep,
    SubscriptionContract,
)
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice, RatedUsage, UsageRecord
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, PaymentApplication, Refund
from finsync.domain.refs import ExternalRefs

T = TypeVar("T")


class Reader:
    """Typed access to one JSON object, with the path for error messages."""

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, Mapping):
            raise MappingError(f"{path} must be an object")
        self.obj, self.path = obj, path

    def _get(self, key: str) -> Any:
        if key not in self.obj or self.obj[key] is None:
            raise MappingError(f"{self.path}.{key} is required")
        return self.obj[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise MappingError(f"{self.path}.{key} must be a non-empty string")
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self.obj.get(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise MappingError(f"{self.path}.{key} must be an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.obj.get(key) is None else self.integer(key)

    def day(self, key: str) -> date:
        try:
            return parse_date(self.text(key))
        except DomainError as exc:
            raise MappingError(f"{self.path}.{key}: {exc}") from exc

    def money(self, key: str, currency: str) -> Money:
        value = self._get(key)
        if not isinstance(value, str):
            raise MappingError(f"{self.path}.{key} must be a decimal string, not {value!r}")
        try:
            return Money.of(value, currency)
        except DomainError as exc:
            raise MappingError(f"{self.path}.{key}: {exc}") from exc

    def flag(self, key: str) -> bool:
        value = self.obj.get(key, False)
        if not isinstance(value, bool):
            raise MappingError(f"{self.path}.{key} must be true or false")
        return value

    def child(self, key: str) -> Reader:
        return Reader(self._get(key), f"{self.path}.{key}")

    def items(self, key: str, decode: Callable[[Reader], T]) -> tuple[T, ...]:
        values = self.obj.get(key) or []
        if not isinstance(values, list):
            raise MappingError(f"{self.path}.{key} must be a list")
        return tuple(decode(Reader(v, f"{self.path}.{key}[{i}]")) for i, v in enumerate(values))

    def refs(self) -> ExternalRefs:
        refs = self.obj.get("external_refs") or {}
        if not isinstance(refs, Mapping) or not all(isinstance(v, str) for v in refs.values()):
            raise MappingError(f"{self.path}.external_refs must map system to id")
        return ExternalRefs.of(refs)


def _build(path: str, factory: Callable[[], T]) -> T:
    """Domain rules broken by a payload are mapping errors of that payload."""
    try:
        return factory()
    except MappingError:
        raise
    except DomainError as exc:
        raise MappingError(f"{path}: {exc}") from exc


def decode_customer(r: Reader) -> CustomerAccount:
    return _build(r.path, lambda: CustomerAccount(
        r.text("id"), r.text("name"), r.text("legal_entity"), r.text("currency"),
        r.text("billing_country"), r.opt_integer("version") or 1, r.refs()))


def _contract_line(currency: str) -> Callable[[Reader], ContractLine]:
    def decode(r: Reader) -> ContractLine:
        ramp = r.items("ramp", lambda s: RampStep(s.day("starts_on"), s.integer("quantity"),
                                                    s.money("unit_price", currency)))
        return _build(r.path, lambda: ContractLine(
            r.text("line_id"), r.text("product_id"), r.text("price_id"), r.integer("quantity"),
            r.money("unit_price", currency), r.day("start_date"), r.day("end_date"), ramp))
    return decode


def decode_contract(r: Reader) -> SubscriptionContract:
    currency = r.text("currency")
    frequency = r.text("billing_frequency")
    if frequency not in BillingFrequency.__members__.values():
        raise MappingError(f"{r.path}.billing_frequency {frequency!r} is not known")
    return _build(r.path, lambda: SubscriptionContract(
        r.text("id"), r.text("customer_id"), r.text("legal_entity"), currency,
        r.day("start_date"), r.day("end_date"), BillingFrequency(frequency),
        r.items("lines", _contract_line(currency)), r.integer("version"), r.refs()))


def decode_amendment(r: Reader) -> ContractAmendment:
    contract = decode_contract(r.child("contract"))
    changes = r.items("changes", lambda c: ContractChange(
        c.text("op"), c.text("line_id"), c.opt_text("before"), c.opt_text("after")))
    return _build(r.path, lambda: ContractAmendment(
        r.text("id"), r.text("contract_id"), r.integer("version"), r.day("effective_date"),
        r.text("reason"), changes, contract))


def _document_line(currency: str) -> Callable[[Reader], DocumentLine]:
    def decode(r: Reader) -> DocumentLine:
        return _build(r.path, lambda: DocumentLine(
            r.text("line_id"), r.text("product_id"), r.text("description"), r.integer("quantity"),
            r.money("amount", currency), r.money("tax_amount", currency),
            r.day("service_start"), r.day("service_end"), r.flag("proration"),
            r.opt_text("contract_line_id")))
    return decode


def decode_invoice(r: Reader) -> Invoice:
    c = r.text("currency")
    return _build(r.path, lambda: Invoice(
        r.text("id"), r.text("number"), r.text("customer_id"), r.opt_text("contract_id"),
        r.opt_integer("contract_version"), r.text("legal_entity"), c, r.day("issue_date"),
        r.day("due_date"), r.items("lines", _document_line(c)), r.money("subtotal", c),
        r.money("tax_total", c), r.money("total", c), r.refs()))


def decode_credit_memo(r: Reader) -> CreditMemo:
    c = r.text("currency")
    return _build(r.path, lambda: CreditMemo(
        r.text("id"), r.text("number"), r.text("invoice_id"), r.text("customer_id"),
        r.text("legal_entity"), c, r.day("issue_date"), r.text("reason"),
        r.items("lines", _document_line(c)), r.money("subtotal", c), r.money("tax_total", c),
        r.money("total", c), r.refs(),
        None if r.obj.get("applied_to_invoice") is None else r.money("applied_to_invoice", c)))


def decode_payment(r: Reader) -> Payment:
    c = r.text("currency")
    return _build(r.path, lambda: Payment(
        r.text("id"), r.text("customer_id"), r.text("legal_entity"), r.money("amount", c),
        r.day("received_on"),
        r.items("applications", lambda a: PaymentApplication(a.text("invoice_id"),
                                                              a.money("amount", c))),
        r.refs()))


def decode_refund(r: Reader) -> Refund:
    c = r.text("currency")
    return _build(r.path, lambda: Refund(
        r.text("id"), r.text("payment_id"), r.text("customer_id"), r.text("legal_entity"),
        r.money("amount", c), r.day("issued_on"), r.text("reason"), r.refs(),
        None if r.obj.get("from_credit") is None else r.money("from_credit", c),
        r.opt_text("reopens_invoice")))


def decode_journal_entry(r: Reader) -> JournalEntry:
    def line(x: Reader) -> JournalLine:
        moved = x.opt_text("transaction_currency")
        return _build(x.path, lambda: JournalLine(
            x.text("account"), _side(x), x.money("amount", x.text("currency")),
            _pairs(x, "dimensions"),
            None if moved is None else x.money("transaction_amount", moved)))

    return _build(r.path, lambda: JournalEntry(
        r.text("id"), r.text("legal_entity"), r.day("posting_date"), r.text("memo"),
        r.items("lines", line), r.opt_text("correlation_id"), r.opt_text("reverses"),
        _pairs(r, "source_refs")))


def _side(r: Reader) -> Side:
    try:
        return Side(r.text("side"))
    except ValueError:
        raise MappingError(f"{r.path}.side must be debit or credit") from None


def _pairs(r: Reader, key: str) -> tuple[tuple[str, str], ...]:
    values = r.obj.get(key) or []
    if not isinstance(values, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p)
            for p in values):
        raise MappingError(f"{r.path}.{key} must be a list of [name, value] pairs")
    return tuple((k, v) for k, v in values)


def journal_entry_payload(entry: JournalEntry) -> dict[str, Any]:
    """The canonical wire shape `decode_journal_entry` reads."""
    def line(ln: JournalLine) -> dict[str, Any]:
        moved = ln.transaction_amount
        return {"account": ln.account, "side": ln.side.value, "amount": str(ln.amount.amount),
                "currency": ln.amount.currency, "dimensions": [list(d) for d in ln.dimensions],
                "transaction_amount": None if moved is None else str(moved.amount),
                "transaction_currency": None if moved is None else moved.currency}

    return {"id": entry.id, "legal_entity": entry.legal_entity,
            "posting_date": entry.posting_date.isoformat(), "memo": entry.memo,
            "correlation_id": entry.correlation_id, "reverses": entry.reverses,
            "source_refs": [list(p) for p in entry.source_refs],
            "lines": [line(ln) for ln in entry.lines]}


def decode_usage(r: Reader) -> UsageRecord:
    return _build(r.path, lambda: UsageRecord(
        r.text("id"), r.text("contract_id"), r.text("product_id"), r.integer("quantity"),
        r.day("occurred_on")))


def decode_rated_usage(r: Reader) -> RatedUsage:
    c = r.text("currency")
    return _build(r.path, lambda: RatedUsage(
        r.text("id"), r.text("contract_id"), r.text("line_id"), r.text("product_id"),
        r.day("period_start"), r.day("period_end"), r.integer("used"), r.integer("included"),
        r.integer("billable"), r.money("amount", c), r.money("drawn", c),
        r.money("invoiced", c), r.opt_text("invoice_id")))


def encode(value: Any) -> Any:
    """A domain object as JSON data: decimal strings, ISO dates, lists for tuples."""
    if isinstance(value, Money):
        return value.to_json()
    if isinstance(value, ExternalRefs):
        return dict(value.pairs)
    if hasattr(value, "__dataclass_fields__"):
        return {name: encode(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    return value
