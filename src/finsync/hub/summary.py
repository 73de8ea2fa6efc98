"""Summary journals: many documents' entries, as the ERP's own rules made them, added up.

Rules:
- The hub computes no accounting: it adds up the entries the ERP previewed for each
  document (`JournalPreviewPort.preview_journal`), nothing else.
- One summary per legal entity, posting date and currency; its lines are the sums per
  account, side and the dimensions the ERP kept on the line (the customer on a subledger
  control account, so receivables per customer still reconcile).
- Each line names the documents it covers (dimension `documents`, ids sorted, space
  separated); the summary is a balanced entry because each member entry is.
- A document the ERP books in another currency (a line with a transaction amount), or in
  several, is not summarised: it needs its own rate and its own realised FX when settled,
  and a summary adds amounts of one currency only.
- The summary's idempotency key derives from its members' delivery keys: the same members
  always make the same key and the same entry, so posting it again is answered by the first
  receipt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from finsync.domain.ids import derive_id
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money, total


@dataclass(frozen=True, slots=True)
class Member:
    """One document in a summary: its delivery, and the ERP's preview of it."""

    delivery_id: int
    delivery_key: str
    document_id: str
    preview: JournalEntry


SummaryGroup = tuple[str, date, str]  # legal entity, posting date, currency
Slot = tuple[str, Side, tuple[tuple[str, str], ...]]  # account, side, dimensions


def summarisable(preview: JournalEntry) -> bool:
    """Booked in one currency, with no transaction amount (see the rules)."""
    return (all(line.transaction_amount is None for line in preview.lines)
            and len({line.amount.currency for line in preview.lines}) == 1)


def group_of(preview: JournalEntry) -> SummaryGroup:
    return preview.legal_entity, preview.posting_date, preview.lines[0].amount.currency


def summary_key(delivery_keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(delivery_keys)).encode()).hexdigest()
    return f"summary:{digest}"


def summarise(key: str, members: Sequence[Member]) -> JournalEntry:
    """The summary entry of members of one group (see `group_of`)."""
    groups = {group_of(m.preview) for m in members}
    if len(groups) != 1:
        raise ValueError(f"a summary takes one entity, date and currency, not {sorted(groups)}")
    (entity, on, currency), = groups
    sums: dict[Slot, list[Money]] = {}
    documents: dict[Slot, set[str]] = {}
    for member in members:
        for line in member.preview.lines:
            slot = (line.account, line.side, line.dimensions)
            sums.setdefault(slot, []).append(line.amount)
            documents.setdefault(slot, set()).add(member.document_id)
    lines = tuple(_line(slot, total(sums[slot], currency), documents[slot])
                  for slot in sorted(sums))
    count = f"{len(members)} document{'s' if len(members) > 1 else ''}"
    return JournalEntry(derive_id("sum", key), entity, on,
                        f"Summary of {count}, {entity} {on.isoformat()}", lines,
                        source_refs=(("summary", key),))


def _line(slot: Slot, amount: Money, documents: set[str]) -> JournalLine:
    account, side, dimensions = slot
    return JournalLine(account, side, amount,
                       (*dimensions, ("documents", " ".join(sorted(documents)))))
