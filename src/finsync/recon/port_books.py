"""`LedgerBooks` over an ERP that offers only `LedgerPort`'s lists (a file drop, or a
remote ERP without set-based reads): the lists are read once per entity and turned into
the ordered streams the checks merge. Memory grows with the ERP's open items here; the
embedded ledger and any ERP with `books()` stream instead.

Tax payable per document is read only from an ERP that lists it (`TaxPayableLists`, e.g.
Tryton, whose tax lines carry their document and jurisdiction); of another one
`tells_tax` is False and the tax check compares nothing.

Digests (`LedgerDigests`) are computed in Python from the same streams, with the same
bucket and fact hashes as the databases' (`dbsnapshot.digest_rows`): the lists are read
whole anyway, and billing's side is spared reading its agreeing buckets."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from typing import Protocol, runtime_checkable

from finsync.connectors.ports import (
    BucketDigest,
    CustomerAmount,
    DocumentAmount,
    LedgerPort,
    TaxAmount,
)
from finsync.dbsnapshot import bucket_of, digest_rows
from finsync.domain.errors import FinsyncError
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money
from finsync.recon.books import summed_tax


class TaxNotReportedError(FinsyncError):
    """The ERP does not list tax payable per document (ask `tells_tax` first)."""

    code = "tax_not_reported"


@runtime_checkable
class TaxPayableLists(Protocol):
    """An ERP that lists, for each document, the tax its postings credited to tax payable
    per jurisdiction (net of debits, in the document's currency; any order)."""

    def tax_payable_rows(self, legal_entity: str, as_of: date) -> Sequence[TaxAmount]: ...


class ListLedgerBooks:
    def __init__(self, ledger: LedgerPort) -> None:
        self._ledger = ledger

    def open_items(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        by_document: dict[str, DocumentAmount] = {}
        for r in self._ledger.receivables(legal_entity, as_of):
            known = by_document.get(r.document_id)
            minor = r.open_amount.to_minor() + (known.amount_minor if known else 0)
            by_document[r.document_id] = DocumentAmount(r.document_id, r.customer_id,
                                                        r.open_amount.currency, minor)
        return (d for _, d in sorted(by_document.items()) if d.amount_minor != 0)

    def open_items_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]:
        return _in(self.open_items(legal_entity, as_of), buckets)

    def open_item_digests(self, legal_entity: str, currency: str,
                          as_of: date) -> list[BucketDigest]:
        return _digests(self.open_items(legal_entity, as_of), currency)

    def customer_open(self, legal_entity: str, currency: str,
                      as_of: date) -> Iterator[CustomerAmount]:
        totals: dict[str, int] = {}
        for r in self._ledger.receivables(legal_entity, as_of):
            if r.open_amount.currency == currency:
                totals[r.customer_id] = totals.get(r.customer_id, 0) + r.open_amount.to_minor()
        return (CustomerAmount(c, m) for c, m in sorted(totals.items()))

    def applied_by(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        totals: dict[str, DocumentAmount] = {}
        for a in self._ledger.applications(legal_entity, as_of):
            known = totals.get(a.by)
            minor = a.amount.to_minor() + (known.amount_minor if known else 0)
            totals[a.by] = DocumentAmount(a.by, "", a.amount.currency, minor)
        return (d for _, d in sorted(totals.items()))

    def applied_by_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]:
        return _in(self.applied_by(legal_entity, as_of), buckets)

    def applied_digests(self, legal_entity: str, currency: str,
                        as_of: date) -> list[BucketDigest]:
        return _digests(self.applied_by(legal_entity, as_of), currency)

    def balances(self, legal_entity: str, accounts: Sequence[str],
                 days: Sequence[date]) -> Sequence[Mapping[str, Money]]:
        wanted = set(accounts)
        return [{b.account: b.balance for b in self._ledger.trial_balance(legal_entity, day)
                 if b.account in wanted} for day in days]

    def balances_in(self, legal_entity: str, currency: str, accounts: Sequence[str],
                    days: Sequence[date]) -> Sequence[Mapping[str, Money]] | None:
        return None  # a trial balance holds only converted amounts

    @property
    def tells_tax(self) -> bool:
        return isinstance(self._ledger, TaxPayableLists)

    def tax_payable(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        if not isinstance(self._ledger, TaxPayableLists):
            raise TaxNotReportedError(f"{type(self._ledger).__name__} does not list tax "
                                      "payable per document")
        rows = summed_tax(self._ledger.tax_payable_rows(legal_entity, as_of))
        return iter(sorted(rows, key=lambda r: (r.document_id, r.jurisdiction)))

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        return self._ledger.period_status(legal_entity, on)


def _in(rows: Iterator[DocumentAmount], buckets: Collection[int]) -> Iterator[DocumentAmount]:
    return (d for d in rows if bucket_of(d.document_id) in buckets)


def _digests(rows: Iterator[DocumentAmount], currency: str) -> list[BucketDigest]:
    return [BucketDigest(*d) for d in digest_rows(
        ((d.document_id, d.currency, d.amount_minor) for d in rows), currency)]
