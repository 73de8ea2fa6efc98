"""`LedgerBooks` over an ERP that offers only `LedgerPort`'s lists (a file drop, or a
remote ERP without set-based reads): the lists are read once per entity and turned into
the ordered streams the checks merge. Memory grows with the ERP's open items here; the
embedded ledger and any ERP with `books()` stream instead."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date

from finsync.connectors.ports import CustomerAmount, DocumentAmount, LedgerPort
from finsync.domain.journal import PeriodStatus
from finsync.domain.money import Money


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

    def balances(self, legal_entity: str, accounts: Sequence[str],
                 days: Sequence[date]) -> Sequence[Mapping[str, Money]]:
        wanted = set(accounts)
        return [{b.account: b.balance for b in self._ledger.trial_balance(legal_entity, day)
                 if b.account in wanted} for day in days]

    def balances_in(self, legal_entity: str, currency: str, accounts: Sequence[str],
                    days: Sequence[date]) -> Sequence[Mapping[str, Money]] | None:
        return None  # a trial balance holds only converted amounts

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        return self._ledger.period_status(legal_entity, on)
