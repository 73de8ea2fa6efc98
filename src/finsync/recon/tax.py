"""The seventh check: tax on billing's documents vs tax payable in the ERP, per document and
jurisdiction, reported per entity, jurisdiction and month.

Rules:
- Billing (the system of record for documents) is `expected`, the ERP `actual`; each
  (document, jurisdiction) is one item, paired by merging the two ordered streams
  (`merge`); an item is `tax:<jurisdiction>:<month>:<document>`, the month billing's (the
  issue date's), or the ERP's for a document billing does not have. Tax without a
  breakdown has the jurisdiction `NO_JURISDICTION` in refs and notes.
- Causes: `not_in_erp` (billing charged tax the ERP holds nothing for), `not_in_billing`
  (the ERP holds tax for a document or jurisdiction billing has not), `tax_differs`, and
  `currency_differs` (the ERP booked it in another currency: none of billing's tax is
  there; a note names the ERP's currency).
  Nothing against nothing (a zero line of an exempt jurisdiction) agrees.
- Only the amounts are compared: a document the ERP booked in another month than billing
  issued it (a closed-period re-route) is no break; a note says where it went.
- A break is explained by an unresolved exception of another class that names its
  document (`invoice:<id>` or `credit_memo:<id>`) or the item; otherwise it opens a
  `reconciliation_break` like any other (`queue`).
- Items in another currency than the check's are compared, their breaks go to the notes
  (as the other checks' foreign items); the check's variance is in its currency.
- Per jurisdiction and month, a note sums each side (billing's documents in billing's
  month, the ERP's in the ERP's) and names the first breaking documents with their cause;
  memory is one sum per jurisdiction, month and currency, never the documents. As in the
  other checks, a note with a colon names a break (`<ref>: …`, an item in another
  currency); the summaries have none.
- An ERP that cannot tell tax per document (`Books.erp_tax` None) is not compared: the
  check says so in a note and has no items.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from finsync.connectors.ports import TaxAmount
from finsync.domain.money import Money
from finsync.recon.books import Books, Snapshot
from finsync.recon.merge import merge
from finsync.recon.model import CheckResult, Collector, Item

NAME = "tax_vs_tax_payable"
NO_JURISDICTION = "none"  # lowercase: no jurisdiction code can be it
NAMED_MAX = 5  # breaking documents named per jurisdiction and month
MONTH_NOTES_MAX = 1_000  # jurisdiction-and-month notes per check (the rest counted)
MOVED_NOTES_MAX = 20  # documents booked in another month, one note each
# The hub's aggregate kinds a tax row's document may be (what an exception names).
DOCUMENT_KINDS = ("invoice", "credit_memo")
_SEP = "\x00"  # below every character: (document, jurisdiction) order as one string


def tax_ref(jurisdiction: str, month: str, document_id: str) -> str:
    return f"tax:{jurisdiction or NO_JURISDICTION}:{month}:{document_id}"


def tax_document(ref: str) -> str:
    """The document a `tax:` ref names (`tax_ref`'s inverse)."""
    return ref.split(":", 3)[3]


def _key(row: TaxAmount) -> str:
    return f"{row.document_id}{_SEP}{row.jurisdiction}"


@dataclass
class _Month:
    """One jurisdiction's month in one currency: each side's sum, the breaks' documents."""

    billing: int = 0
    erp: int = 0
    breaks: int = 0
    named: list[str] = field(default_factory=list)


class _Summary:
    def __init__(self) -> None:
        self.months: dict[tuple[str, str, str], _Month] = {}
        self.moved: list[str] = []
        self.moved_count = 0
        self.foreign: list[str] = []

    def month(self, jurisdiction: str, month: str, currency: str) -> _Month:
        key = (jurisdiction or NO_JURISDICTION, month, currency)
        if key not in self.months:
            self.months[key] = _Month()
        return self.months[key]

    def add(self, billed: TaxAmount | None, booked: TaxAmount | None) -> None:
        if billed is not None:
            month = self.month(billed.jurisdiction, billed.month, billed.currency)
            month.billing += billed.amount_minor
        if booked is not None:
            month = self.month(booked.jurisdiction, booked.month, booked.currency)
            month.erp += booked.amount_minor
        if billed is not None and booked is not None and billed.month != booked.month:
            self.moved_count += 1
            if len(self.moved) < MOVED_NOTES_MAX:
                self.moved.append(f"{billed.document_id} {billed.jurisdiction or NO_JURISDICTION}"
                                  f" issued in {billed.month}, booked in {booked.month} "
                                  "(not a break)")

    def broke(self, row: TaxAmount, cause: str) -> None:
        found = self.month(row.jurisdiction, row.month, row.currency)
        found.breaks += 1
        if len(found.named) < NAMED_MAX:
            found.named.append(f"{row.document_id} ({cause})")

    def notes(self) -> tuple[str, ...]:
        months = sorted(self.months.items())
        notes = [_month_note(key, m) for key, m in months[:MONTH_NOTES_MAX]]
        if len(months) > MONTH_NOTES_MAX:
            notes.append(f"and {len(months) - MONTH_NOTES_MAX} more jurisdiction month(s)")
        notes += self.moved
        if self.moved_count > len(self.moved):
            notes.append(f"and {self.moved_count - len(self.moved)} more document(s) booked "
                         "in another month")
        return (*notes, *self.foreign)


def _month_note(key: tuple[str, str, str], m: _Month) -> str:
    jurisdiction, month, currency = key
    note = (f"{jurisdiction} {month} billing {Money.from_minor(m.billing, currency).amount} "
            f"{currency}, ERP {Money.from_minor(m.erp, currency).amount} {currency}")
    if not m.breaks:
        return note
    more = f" and {m.breaks - len(m.named)} more" if m.breaks > len(m.named) else ""
    return f"{note}; {m.breaks} break(s) in {', '.join(m.named)}{more}"


def _explained(books: Books, ref: str, document_id: str) -> str | None:
    for kind in DOCUMENT_KINDS:
        found = books.explained.get(f"{kind}:{document_id}")
        if found is not None:
            return found
    return books.explained.get(ref)


def _pairs(books: Books) -> Iterator[tuple[TaxAmount | None, TaxAmount | None]]:
    assert books.erp_tax is not None
    for _, billed, booked in merge(books.billing_tax(), books.erp_tax(), _key, _key):
        yield billed, booked


def _compared(billed: TaxAmount | None,
              booked: TaxAmount | None) -> tuple[TaxAmount, int, int, str]:
    """(the row that names the item, expected, actual, cause if they differ). The ERP's tax
    in another currency than billing's is none of billing's: actual 0, `currency_differs`."""
    if booked is None:
        assert billed is not None  # merge pairs at least one row
        return billed, billed.amount_minor, 0, "not_in_erp"
    if billed is None:
        return booked, 0, booked.amount_minor, "not_in_billing"
    if booked.currency != billed.currency:
        return billed, billed.amount_minor, 0, "currency_differs"
    return billed, billed.amount_minor, booked.amount_minor, "tax_differs"


def tax_vs_tax_payable(source: Books | Snapshot) -> CheckResult:
    books = source.books() if isinstance(source, Snapshot) else source
    if books.erp_tax is None:
        return CheckResult(NAME, books.legal_entity, books.currency, (), (
            "not compared, the ERP does not report tax payable per document",), compared=0)
    out, summary = Collector(books.watched), _Summary()
    for billed, booked in _pairs(books):
        summary.add(billed, booked)
        row, expected, actual, cause = _compared(billed, booked)
        breaks = expected != actual
        if breaks:
            summary.broke(row, cause)
        ref = tax_ref(row.jurisdiction, row.month, row.document_id)
        currency = row.currency
        if booked is not None and booked.currency != currency:
            summary.foreign.append(f"{ref}: billed in {currency}, booked in "
                                   f"{booked.currency} ({cause})")
        if currency != books.currency:
            if breaks:
                summary.foreign.append(f"{ref}: {Money.from_minor(actual - expected, currency)}"
                                       f" ({cause})")
            continue
        if out.wants(ref, breaks):
            out.keep(Item(ref, Money.from_minor(expected, currency),
                          Money.from_minor(actual, currency), cause=cause if breaks else None,
                          explained_by=_explained(books, ref, row.document_id)
                          if breaks else None))
    return CheckResult(NAME, books.legal_entity, books.currency, tuple(out.items),
                       summary.notes(), compared=out.compared)
