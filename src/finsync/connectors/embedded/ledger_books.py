"""The embedded ledger's books as reconciliation reads them (`LedgerBooks`): set-based SQL
reads (`systems/ledger/recon_reads.py`) inside one read snapshot."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

from sqlalchemy import Connection, Engine

from finsync.connectors.ports import BucketDigest, CustomerAmount, DocumentAmount, TaxAmount
from finsync.dbsnapshot import read_snapshot
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.systems.ledger import recon_reads


@contextmanager
def ledger_books(engine: Engine) -> Iterator[LedgerSnapshot]:
    with read_snapshot(engine) as conn:
        yield LedgerSnapshot(conn)


class LedgerSnapshot:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def open_items(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for document, customer, currency, amount in recon_reads.open_items(
                self._conn, legal_entity, as_of):
            yield DocumentAmount(document, customer, currency, amount)

    def open_items_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]:
        for document, customer, currency, amount in recon_reads.open_items(
                self._conn, legal_entity, as_of, buckets):
            yield DocumentAmount(document, customer, currency, amount)

    def open_item_digests(self, legal_entity: str, currency: str,
                          as_of: date) -> list[BucketDigest]:
        return [BucketDigest(*d) for d in recon_reads.open_item_digests(
            self._conn, legal_entity, currency, as_of)]

    def customer_open(self, legal_entity: str, currency: str,
                      as_of: date) -> Iterator[CustomerAmount]:
        for customer, amount in recon_reads.customer_open(self._conn, legal_entity, currency,
                                                          as_of):
            yield CustomerAmount(customer, amount)

    def applied_by(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        for document, currency, amount in recon_reads.applied_by(self._conn, legal_entity,
                                                                 as_of):
            yield DocumentAmount(document, "", currency, amount)

    def applied_by_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]:
        for document, currency, amount in recon_reads.applied_by(self._conn, legal_entity,
                                                                 as_of, buckets):
            yield DocumentAmount(document, "", currency, amount)

    def applied_digests(self, legal_entity: str, currency: str,
                        as_of: date) -> list[BucketDigest]:
        return [BucketDigest(*d) for d in recon_reads.applied_digests(
            self._conn, legal_entity, currency, as_of)]

    def balances(self, legal_entity: str, accounts: Sequence[str],
                 days: Sequence[date]) -> Sequence[Mapping[str, Money]]:
        return recon_reads.balances(self._conn, legal_entity, accounts, days)

    def balances_in(self, legal_entity: str, currency: str, accounts: Sequence[str],
                    days: Sequence[date]) -> Sequence[Mapping[str, Money]]:
        return recon_reads.balances(self._conn, legal_entity, accounts, days, currency)

    def tax_payable(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        """The month is the posting date's: a re-routed document's is the month it was
        booked in, not its issue date's."""
        for document, jurisdiction, posted, currency, amount in recon_reads.tax_payable(
                self._conn, legal_entity, as_of):
            yield TaxAmount(document, jurisdiction, posted.strftime("%Y-%m"), currency, amount)

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        return recon_reads.period_status(self._conn, legal_entity, on)
