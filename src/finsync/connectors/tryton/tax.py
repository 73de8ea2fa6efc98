"""Tax payable per document and jurisdiction, read back from Tryton's posted tax lines.

Rules:
- A tax line carries its document and jurisdiction in its description
  (`moves.tax_description`); lines without one (posted before tax lines were described, or
  by hand: a remittance to the authority) belong to no document and are not read.
- Per line: its net credit (credit - debit) in the company's currency, the month of its
  date; the caller sums lines of one document and jurisdiction (`recon.port_books`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from finsync.connectors.ports import TaxAmount
from finsync.connectors.tryton.books import Company
from finsync.connectors.tryton.moves import TAX_PREFIX, parse_tax_description
from finsync.connectors.tryton.rpc import TrytonClient
from finsync.domain.money import Money


def tax_payable_rows(client: TrytonClient, company: Company, tax_code: str,
                     as_of: date) -> list[TaxAmount]:
    """One row per posted, described tax line of the company dated up to `as_of`."""
    domain: list[Any] = [("move.state", "=", "posted"), ("move.company", "=", company.id),
                         ("account.code", "=", tax_code), ("date", "<=", as_of),
                         ("description", "like", f"{TAX_PREFIX}%")]
    rows = client.model("account.move.line", "search_read", domain, 0, None, None,
                        ["description", "debit", "credit", "date"], context=company.context)
    found = []
    for row in rows:
        parsed = parse_tax_description(row["description"] or "")
        if parsed is None:
            continue
        jurisdiction, document_id = parsed
        net = Money(row["credit"] - row["debit"], company.currency)
        found.append(TaxAmount(document_id, jurisdiction, row["date"].strftime("%Y-%m"),
                               company.currency, net.to_minor()))
    return found
