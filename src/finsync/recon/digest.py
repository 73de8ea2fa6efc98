"""Digest-first reading of the document checks' streams: billing's open invoices against
the ERP's open items, billing's payments against the ERP's applications.

Rules:
- Each side sums its stream per bucket in its own snapshot (`BillingDigests`,
  `LedgerDigests`: count, sum and fact hash of its non-zero (document, amount) rows). A
  bucket whose two digests are equal holds the same facts on both sides, so every item
  in it agrees: it is counted (the rows billing has in the entity's currency, the items
  the check would have compared) and not read. Only buckets that differ are read, row by
  row, through the same merge as a full read; so a one-cent difference on one document
  is found, and reported, exactly as a full read reports it.
- A bucket holding a watched ref (an open break) is read, so the queue can resolve it.
- A small book (at most `FULL_READ_ROWS_MAX` rows) is read in full: its report keeps every
  agreeing item, as before digests. A large one keeps agreeing items only from the buckets
  it reads (the counts, breaks and causes are the same either way).
- Either side without digests (a billing platform read only as streams): read in full.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from finsync.connectors.ports import (
    BillingBooks,
    BillingDigests,
    BucketDigest,
    DocumentAmount,
    LedgerBooks,
    LedgerDigests,
)
from finsync.dbsnapshot import bucket_of
from finsync.recon.model import AGREEING_KEPT_MAX

FULL_READ_ROWS_MAX = AGREEING_KEPT_MAX

Stream = Callable[[], Iterable[DocumentAmount]]


@dataclass(frozen=True, slots=True)
class Narrowed:
    """Which buckets of a check's streams to read (None: all), and how many items the
    check compares in the buckets left unread."""

    buckets: frozenset[int] | None
    agreeing: int = 0


@dataclass(frozen=True, slots=True)
class DocumentStreams:
    open_invoices: Stream
    erp_open_items: Stream
    payments: Stream
    erp_applied: Stream
    documents_agreeing: int = 0
    payments_agreeing: int = 0


def narrow(billing: Sequence[BucketDigest], erp: Sequence[BucketDigest],
           watched: Collection[int], full_read_rows_max: int) -> Narrowed:
    """The buckets to read: those whose digests differ, and those holding a watched ref."""
    if sum(d.rows for d in billing) <= full_read_rows_max:
        return Narrowed(None)
    ours = {d.bucket: d for d in billing}
    theirs = {d.bucket: d for d in erp}
    read = {b for b in ours.keys() | theirs.keys()
            if _facts(ours.get(b)) != _facts(theirs.get(b))}
    read.update(watched)
    agreeing = sum(d.rows for b, d in ours.items() if b not in read)
    return Narrowed(frozenset(read), agreeing)


def _facts(digest: BucketDigest | None) -> tuple[int, int, int]:
    if digest is None:
        return 0, 0, 0
    return digest.facts, digest.amount_minor, digest.fingerprint


def document_streams(billing: BillingBooks, ledger: LedgerBooks, entity: str, currency: str,
                     as_of: date, watched: Collection[str],
                     full_read_rows_max: int = FULL_READ_ROWS_MAX) -> DocumentStreams:
    """The four document streams of one entity, each narrowed by digests when both sides
    answer them."""
    if not (isinstance(billing, BillingDigests) and isinstance(ledger, LedgerDigests)):
        return DocumentStreams(lambda: billing.open_invoices(entity, as_of),
                               lambda: ledger.open_items(entity, as_of),
                               lambda: billing.payments_applied(entity, as_of),
                               lambda: ledger.applied_by(entity, as_of))
    documents = narrow(billing.open_invoice_digests(entity, currency, as_of),
                       ledger.open_item_digests(entity, currency, as_of),
                       _watched_buckets(watched, "invoice"), full_read_rows_max)
    payments = narrow(billing.payment_digests(entity, currency, as_of),
                      ledger.applied_digests(entity, currency, as_of),
                      _watched_buckets(watched, "payment"), full_read_rows_max)
    d, p = documents.buckets, payments.buckets
    return DocumentStreams(
        _narrowed(lambda: billing.open_invoices(entity, as_of),
                  lambda b: billing.open_invoices_in(entity, as_of, b), d),
        _narrowed(lambda: ledger.open_items(entity, as_of),
                  lambda b: ledger.open_items_in(entity, as_of, b), d),
        _narrowed(lambda: billing.payments_applied(entity, as_of),
                  lambda b: billing.payments_applied_in(entity, as_of, b), p),
        _narrowed(lambda: ledger.applied_by(entity, as_of),
                  lambda b: ledger.applied_by_in(entity, as_of, b), p),
        documents.agreeing, payments.agreeing)


def _narrowed(whole: Stream, some: Callable[[frozenset[int]], Iterable[DocumentAmount]],
              buckets: frozenset[int] | None) -> Stream:
    """The stream read whole (None), not at all (no bucket differs), or in its buckets."""
    if buckets is None:
        return whole
    if not buckets:
        return tuple
    return lambda: some(buckets)


def _watched_buckets(watched: Collection[str], kind: str) -> set[int]:
    prefix = f"{kind}:"
    return {bucket_of(ref[len(prefix):]) for ref in watched if ref.startswith(prefix)}
