"""Export the books as a beancount file, so an independent program can check them.

Rules: one `open` directive per account (dated at the entity's first posting), one
transaction per journal entry in the functional currency; account names are
`<Type>:<Entity>:<code>-<Name>`, which beancount accepts (components start with a capital
letter or a digit; letters, digits and dashes only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date

from finsync.domain.journal import JournalEntry, Side
from finsync.domain.sensitive import Sensitivity, placeholder
from finsync.systems.ledger.chart import AccountType, Chart

_TYPE_ROOT = {AccountType.ASSET: "Assets", AccountType.LIABILITY: "Liabilities",
              AccountType.EQUITY: "Equity", AccountType.REVENUE: "Income",
              AccountType.EXPENSE: "Expenses"}


def _component(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    joined = "".join(w[:1].upper() + w[1:] for w in words)
    return joined if joined[:1].isupper() or joined[:1].isdigit() else f"X{joined}"


def account_name(entity: str, chart: Chart, code: str) -> str:
    account = chart.get(code)
    return (f"{_TYPE_ROOT[account.type]}:{_component(entity)}:"
            f"{_component(code)}-{_component(account.name)}")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export(books: Iterable[tuple[str, str, Chart, Sequence[JournalEntry]]], *,
           memos: bool = True) -> str:
    """`books`: (entity, functional currency, chart, entries) for each legal entity. Without
    `memos` each narration is the placeholder of free text (`domain.sensitive`): the entry
    id and correlation id still name it."""
    out = ['option "title" "finsync ledger export"', ""]
    for entity, currency, chart, entries in books:
        opened = min((e.posting_date for e in entries), default=date(2000, 1, 1))
        for account in chart.accounts:
            out.append(f"{opened.isoformat()} open {account_name(entity, chart, account.code)} "
                       f"{currency}")
        out.append("")
        for entry in entries:
            out.extend(_transaction(entity, chart, entry, memos))
    return "\n".join(out) + "\n"


def _transaction(entity: str, chart: Chart, entry: JournalEntry, memos: bool) -> list[str]:
    narration = entry.memo if memos else placeholder(Sensitivity.FREE_TEXT)
    head = f"{entry.posting_date.isoformat()} * {_quote(narration)}"
    meta = [f'  entry: {_quote(entry.id)}']
    if entry.correlation_id:
        meta.append(f"  correlation: {_quote(entry.correlation_id)}")
    postings = []
    for line in entry.lines:
        sign = "" if line.side is Side.DEBIT else "-"
        postings.append(f"  {account_name(entity, chart, line.account)}  "
                        f"{sign}{line.amount.amount} {line.amount.currency}")
    return [head, *meta, *postings, ""]
