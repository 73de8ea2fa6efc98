"""The embedded billing platform's books as reconciliation reads them (BillingRecordsPort):
set-based SQL reads (`systems/billing/reads.py`) inside one read snapshot."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import date

from sqlalchemy import Connection

from finsync.connectors.ports import (
    BucketDigest,
    ContractDocument,
    ContractValue,
    CustomerAmount,
    DocumentAmount,
    TaxAmount,
)
from finsync.dbsnapshot import read_snapshot
from finsync.systems.billing import reads
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingConfig


class EmbeddedBillingRecords:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    @contextmanager
    def books(self) -> Iterator[BillingSnapshot]:
        with read_snapshot(self._service.engine) as conn:
            yield BillingSnapshot(conn, self._service.config)


class BillingSnapshot:
    """`BillingBooks` over one read transaction of billing's database."""

    def __init__(self, conn: Connection, config: BillingConfig) -> None:
        self._conn, self._config = conn, config

    def open_invoices(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for row in reads.open_invoices(self._conn, legal_entity, as_of):
            yield DocumentAmount(*row)

    def open_invoices_in(self, legal_entity: str, as_of: date,
                         buckets: Collection[int]) -> Iterator[DocumentAmount]:
        for row in reads.open_invoices(self._conn, legal_entity, as_of, buckets):
            yield DocumentAmount(*row)

    def open_invoice_digests(self, legal_entity: str, currency: str,
                             as_of: date) -> list[BucketDigest]:
        return [BucketDigest(*d) for d in reads.open_invoice_digests(
            self._conn, legal_entity, currency, as_of)]

    def customer_balances(self, legal_entity: str, currency: str,
                          as_of: date) -> Iterator[CustomerAmount]:
        for customer, amount in reads.customer_balances(self._conn, legal_entity, currency,
                                                        as_of):
            yield CustomerAmount(customer, amount)

    def payments_applied(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for row in reads.payments(self._conn, legal_entity, as_of):
            yield DocumentAmount(*row)

    def payments_applied_in(self, legal_entity: str, as_of: date,
                            buckets: Collection[int]) -> Iterator[DocumentAmount]:
        for row in reads.payments(self._conn, legal_entity, as_of, buckets):
            yield DocumentAmount(*row)

    def payment_digests(self, legal_entity: str, currency: str,
                        as_of: date) -> list[BucketDigest]:
        return [BucketDigest(*d) for d in reads.payment_digests(
            self._conn, legal_entity, currency, as_of)]

    def credit_memos(self, legal_entity: str, as_of: date) -> Iterator[ContractDocument]:
        for contract_id, row in reads.credit_memos(self._conn, legal_entity, as_of):
            yield ContractDocument(contract_id, DocumentAmount(*row))

    def contract_values(self, legal_entity: str) -> Iterator[ContractValue]:
        for r in reads.contract_values(self._conn, self._config, legal_entity):
            yield ContractValue(r.contract_id, r.customer_id, r.value)

    def tax_amounts(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        for r in reads.tax_amounts(self._conn, legal_entity, as_of):
            yield TaxAmount(r.document_id, r.jurisdiction, r.issue_date.strftime("%Y-%m"),
                            r.currency, r.amount_minor)
