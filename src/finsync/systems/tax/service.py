"""The embedded tax engine's service API: quote, commit, void, certificates, liability.

Rules:
- One transaction per call; a refused call writes nothing.
- `quote` is read-only: the rules and the customer's certificates, then the pure engine.
- `commit` records a final document's own jurisdiction lines (it does not quote again:
  what billing put on the document is what is owed). Idempotent by document id: the same
  body again answers the first commit (`replayed`); another body under the same id is
  refused (`tax_commit_conflict`). The answer is also kept under the caller's key, and a
  key answers again only for the document committed under it, with that body: another
  document or body under a kept key is refused (`tax_commit_conflict`), as the ledger and
  the revenue engine refuse another body under a known key.
- A `void` credit memo is how an invoice is voided: the invoice and its credit memos are
  marked voided; the liability report keeps each in its own period (the void memo credits
  what was left). A void of an invoice not committed yet is
  refused (`tax_invoice_not_committed`), so a caller may retry once it is.
- Master data is loaded at start-up (`load_rules`) and kept in memory by this service.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from finsync.domain.errors import DomainError
from finsync.domain.invoice import VOID, CreditMemo, Invoice
from finsync.domain.tax import TaxRequest, TaxResult
from finsync.systems.tax import engine as tax_engine
from finsync.systems.tax import store
from finsync.systems.tax import tables as t
from finsync.systems.tax.certificate import ExemptionCertificate
from finsync.systems.tax.errors import (
    CertificateError,
    CommitConflictError,
    CommitKeyError,
    UncommittedInvoiceError,
    UnknownCertificateError,
)
from finsync.systems.tax.liability import LiabilityRow, filing_period, liability
from finsync.systems.tax.rules import TaxRules

KEY_MAX_CHARS = 512  # the receipts' key column


@dataclass(frozen=True, slots=True)
class Committed:
    """The engine's answer to a commit: the document's transaction and its status."""

    document_id: str
    status: str
    replayed: bool = False
    detail: dict[str, str] = field(default_factory=dict)


class TaxService:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self._clock = engine, clock
        self._rules: TaxRules | None = None

    # -- master data -------------------------------------------------------------------------
    def load_rules(self, rules: TaxRules) -> bool:
        """Make the stored master data `rules`; whether it had to be rewritten."""
        rows = store.rule_rows(rules)
        try:
            changed = self._write_rules(rows)
        except IntegrityError:
            # Another process started with the same file at the same time and wrote first.
            changed = self._write_rules(rows)
        self._rules = rules
        return changed

    def _write_rules(self, rows: store.Rows) -> bool:
        with self.engine.begin() as conn:
            changed = store.stored_rule_rows(conn) != rows
            if changed:
                store.write_rules(conn, rows)
        return changed

    def rules(self) -> TaxRules:
        if self._rules is None:
            with self.engine.connect() as conn:
                self._rules = store.rules_of(store.stored_rule_rows(conn))
        return self._rules

    # -- quotes --------------------------------------------------------------------------------
    def quote(self, request: TaxRequest) -> TaxResult:
        rules = self.rules()
        with self.engine.connect() as conn:
            held = store.certificates_of(conn, request.customer_id)
        return tax_engine.quote(rules, held, request)

    # -- commits -------------------------------------------------------------------------------
    def commit(self, document: Invoice | CreditMemo, key: str) -> Committed:
        if not key or len(key) > KEY_MAX_CHARS:
            raise CommitKeyError(f"a commit's key must have 1 to {KEY_MAX_CHARS} characters")
        body = store.body_of(document)
        try:
            with self.engine.begin() as conn:
                return self._commit(conn, body, key)
        except IntegrityError:
            # A concurrent commit of the same document or key won: answer as a redelivery.
            with self.engine.begin() as conn:
                return self._commit(conn, body, key)

    def _commit(self, conn: Connection, body: store.Body, key: str) -> Committed:
        kept = self._kept(conn, key)
        if kept is not None:
            _same_document(key, kept, body)
            return kept.answer
        row = conn.execute(select(t.transactions.c.body_hash, t.transactions.c.status)
                           .where(t.transactions.c.document_id == body.document_id)).first()
        if row is not None and row.body_hash != body.hash:
            raise CommitConflictError(f"{body.document_id} was committed with another body")
        if row is not None:
            answer = Committed(body.document_id, row.status, True)
        else:
            answer = self._record(conn, body)
        self._keep(conn, key, answer)
        return answer

    def _record(self, conn: Connection, body: store.Body) -> Committed:
        voiding = body.invoice_id is not None and body.reason == VOID
        invoice = None if body.invoice_id is None else conn.execute(
            select(t.transactions.c.status)
            .where(t.transactions.c.document_id == body.invoice_id)).scalar()
        if voiding and invoice is None:
            raise UncommittedInvoiceError(f"{body.document_id} voids {body.invoice_id}, "
                                          "which the tax engine has not committed")
        status = store.VOIDED if invoice == store.VOIDED else store.COMMITTED
        store.insert_body(conn, body, status, self._clock())
        if voiding:
            assert body.invoice_id is not None
            _void(conn, body.invoice_id, body.document_id)
            status = store.VOIDED
        return Committed(body.document_id, status)

    def find(self, key: str) -> Committed | None:
        with self.engine.connect() as conn:
            kept = self._kept(conn, key)
        return None if kept is None else kept.answer

    def find_many(self, documents: Mapping[str, Invoice | CreditMemo]) -> dict[str, Committed]:
        """Per key, the answer kept under it, for the keys whose very document (by id and
        body) was committed under them, in one read: what committing each again would
        answer. A document that is not the one kept (or cannot be recorded at all) is left
        out: committing it says why."""
        if not documents:
            return {}
        with self.engine.connect() as conn:
            found = {row.key: _kept_of(row) for row in conn.execute(
                _KEPT.where(t.receipts.c.key.in_(set(documents))))}
        return {key: kept.answer for key, kept in found.items()
                if _is_same(kept, documents[key])}

    @staticmethod
    def _kept(conn: Connection, key: str) -> _Kept | None:
        row = conn.execute(_KEPT.where(t.receipts.c.key == key)).first()
        return None if row is None else _kept_of(row)

    def _keep(self, conn: Connection, key: str, answer: Committed) -> None:
        detail = {"status": answer.status, "document_id": answer.document_id}
        conn.execute(insert(t.receipts), {"key": key, "document_id": answer.document_id,
                                          "detail": json.dumps(detail, sort_keys=True),
                                          "recorded_at": self._clock()})

    # -- certificates --------------------------------------------------------------------------
    def add_certificate(self, certificate: ExemptionCertificate) -> None:
        if certificate.jurisdiction not in self.rules().jurisdictions:
            raise CertificateError(f"certificate {certificate.id}: unknown jurisdiction "
                                   f"{certificate.jurisdiction}")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.certificates), {
                    "id": certificate.id, "customer_id": certificate.customer_id,
                    "jurisdiction": certificate.jurisdiction,
                    "valid_from": certificate.valid_from, "valid_to": certificate.valid_to,
                    "revoked_at": None, "created_at": self._clock()})
        except IntegrityError as exc:
            raise CertificateError(f"certificate {certificate.id} exists already") from exc

    def certificates(self, customer_id: str | None = None) -> list[ExemptionCertificate]:
        with self.engine.connect() as conn:
            return store.certificates_of(conn, customer_id)

    def revoke_certificate(self, certificate_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(t.certificates)
                                .where(t.certificates.c.id == certificate_id,
                                       t.certificates.c.revoked_at.is_(None))
                                .values(revoked_at=self._clock()))
            if done.rowcount != 1:
                raise UnknownCertificateError(f"no certificate {certificate_id} in force "
                                              "to revoke")

    # -- reports -------------------------------------------------------------------------------
    def liability(self, legal_entity: str, period: str) -> tuple[LiabilityRow, ...]:
        """Per jurisdiction and currency, for `period`: "YYYY-MM", "YYYY-Qn" or "YYYY"."""
        span = filing_period(period)
        with self.engine.connect() as conn:
            details = store.committed_details(conn, legal_entity, span.start, span.end)
        return liability(details)


@dataclass(frozen=True, slots=True)
class _Kept:
    """The answer kept under a key, with the body hash of the document it answered."""

    answer: Committed
    body_hash: str


# A kept answer with its document's body hash (a kept answer's document is always recorded:
# both are written in one transaction, and no transaction row is ever deleted).
_KEPT = (select(t.receipts.c.key, t.receipts.c.document_id, t.receipts.c.detail,
                t.transactions.c.body_hash)
         .join(t.transactions, t.transactions.c.document_id == t.receipts.c.document_id))


def _kept_of(row: Row[Any, Any, Any, Any]) -> _Kept:
    """A kept answer, as a redelivery gets it."""
    detail = json.loads(row.detail)
    return _Kept(Committed(row.document_id, detail["status"], True, detail), row.body_hash)


def _answers(kept: _Kept, body: store.Body) -> bool:
    return (kept.answer.document_id, kept.body_hash) == (body.document_id, body.hash)


def _same_document(key: str, kept: _Kept, body: store.Body) -> None:
    if not _answers(kept, body):
        raise CommitConflictError(f"key {key!r} was committed for {kept.answer.document_id} "
                                  "with another body")


def _is_same(kept: _Kept, document: Invoice | CreditMemo) -> bool:
    try:
        body = store.body_of(document)
    except DomainError:  # it cannot be recorded at all: its commit says why
        return False
    return _answers(kept, body)


def _void(conn: Connection, invoice_id: str, voided_by: str) -> None:
    """The invoice and every credit memo of it leave the liability report."""
    family = store.family_of(conn, invoice_id)
    conn.execute(update(t.transactions)
                 .where(t.transactions.c.document_id.in_(family))
                 .values(status=store.VOIDED, voided_by=voided_by))
