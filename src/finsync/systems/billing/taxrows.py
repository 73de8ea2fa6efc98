"""The rows of billing's tax: each document line's jurisdiction lines, and held drafts.

Rules:
- A document line's jurisdiction lines are rows keyed by (document, line number, their own
  number), amounts in minor units, the rate as a decimal string.
- A held draft is one row at its latest version: inserted when first held, updated when a
  retry holds it again or releases it (`invoice_id`); its body is the draft's canonical
  JSON (`domain.codec`), read back as it was written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from finsync.domain import codec
from finsync.domain.invoice import DocumentLine
from finsync.systems.billing.state import BillingState

Row = dict[str, Any]


def tax_rows(document_id: str, lines: Sequence[DocumentLine]) -> list[Row]:
    """Each line's jurisdiction lines, keyed by the line's number and their own."""
    return [{"document_id": document_id, "line_no": n, "detail_no": k,
             "jurisdiction": d.jurisdiction, "tax_type": d.tax_type, "rate": str(d.rate),
             "treatment": d.treatment.value, "currency": d.amount.currency,
             "taxable_minor": d.taxable.to_minor(), "amount_minor": d.amount.to_minor()}
            for n, line in enumerate(lines, 1) for k, d in enumerate(line.taxes, 1)]


def held_rows(old: BillingState, new: BillingState) -> tuple[list[Row], list[Row]]:
    """(rows to insert, rows to update by id): drafts newly held, and new versions."""
    before = {d.id: d for d in old.held}
    inserted: list[Row] = []
    updated: list[Row] = []
    for draft in new.held:
        known = before.get(draft.id)
        if known == draft:
            continue
        held = draft.held
        row = {"id": held.id, "customer_id": held.customer_id, "contract_id": held.contract_id,
               "legal_entity": held.legal_entity, "currency": held.currency,
               "issue_date": held.issue_date, "version": held.version, "code": held.code,
               "transient": held.transient, "subtotal_minor": held.subtotal.to_minor(),
               "invoice_id": held.invoice_id,
               "body": json.dumps(codec.encode(draft), sort_keys=True, separators=(",", ":"))}
        (inserted if known is None else updated).append(row)
    return inserted, updated
