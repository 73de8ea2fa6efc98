"""The AR page's read model: aging by bucket and customer, each subledger beside its GL
control account, and the customer credits (unapplied cash, over-credits), all from the
embedded ledger's own reports (`LedgerService`).

Rules:
- Aging is what `finsync ledger aging` prints (the same `LedgerService.aging` call): per
  customer, booked open receivables per bucket of days past due, customer credits apart.
  The page shows the largest customers first, at most `limit` of them (the chart
  `CHART_CUSTOMERS`, and the others added up); the bucket totals and the customer count
  are over every customer, so nothing is hidden by the cut.
- A subledger that differs from its control account is flagged (`agrees` false), never
  rounded away.
- Amounts are in the entity's functional currency, as decimal strings with that currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.recon.service import Entity
from finsync.systems.ledger.ar import BUCKETS, OpenItem
from finsync.systems.ledger.service import LedgerService
from finsync.views.services import SystemExternalError

CUSTOMERS_MAX = 1_000
CHART_CUSTOMERS = 10  # one bar segment each in the chart; the rest as one
CREDITS_MAX = 1_000
COLUMNS = (*BUCKETS, "credits")


def embedded_ledger(service: LedgerService | None) -> LedgerService:
    if service is None:
        raise SystemExternalError("the ERP is an external system: AR aging and the "
                                  "subledgers are its own reports")
    return service


@dataclass(frozen=True, slots=True)
class Aging:
    legal_entity: str
    currency: str
    as_of: date
    customers: tuple[dict[str, str], ...]  # one row of `LedgerService.aging` per customer
    limit: int

    def as_json(self) -> dict[str, Any]:
        totals = {b: sum((Decimal(c[b]) for c in self.customers), Decimal(0))
                  for b in (*COLUMNS, "total")}
        largest = sorted(self.customers, key=lambda c: (-Decimal(c["total"]), c["customer"]))
        charted = largest[:CHART_CUSTOMERS]
        others = {b: str(totals[b] - sum((Decimal(c[b]) for c in charted), Decimal(0)))
                  for b in (*COLUMNS, "total")}
        return {"legal_entity": self.legal_entity, "currency": self.currency,
                "as_of": self.as_of.isoformat(), "buckets": list(COLUMNS),
                "totals": {b: str(v) for b, v in totals.items()},
                "customers_count": len(self.customers),
                "customers": largest[:self.limit],
                # The chart: the largest customers one by one, the rest added up.
                "chart": {"customers": charted, "others_count": len(largest) - len(charted),
                          "others": others}}


def aging(ledger: LedgerService, entity: Entity, as_of: date, limit: int) -> Aging:
    """Open receivables of `entity` at the end of `as_of` per customer and bucket."""
    return Aging(entity.id, entity.currency, as_of,
                 tuple(ledger.aging(entity.id, as_of)), min(limit, CUSTOMERS_MAX))


def subledgers(ledger: LedgerService, entities: tuple[Entity, ...],
               as_of: date) -> dict[str, Any]:
    """Per entity, each subledger (AR, customer credits) beside its GL control account."""
    rows = []
    for entity in entities:
        for control, found in ledger.subledger_check(entity.id, as_of).items():
            rows.append({"legal_entity": entity.id, "currency": entity.currency,
                         "control": control, "subledger": found["subledger"],
                         "gl": found["control"], "difference": found["difference"],
                         "agrees": Decimal(found["difference"]) == 0})
    return {"as_of": as_of.isoformat(), "rows": rows,
            "disagreeing": sum(1 for r in rows if not r["agrees"])}


def _credit(item: OpenItem) -> dict[str, Any]:
    return {"customer": item.customer_id, "document": item.document_id,
            "posting_date": item.posting_date.isoformat(),
            "original": {"amount": str(item.original.amount),
                         "currency": item.original.currency},
            "open": {"amount": str(item.open.amount), "currency": item.open.currency},
            "booked": {"amount": str(item.booked_open.amount),
                       "currency": item.booked_open.currency}}


def credits(ledger: LedgerService, entity: Entity, as_of: date, limit: int) -> dict[str, Any]:
    """Unapplied cash and over-credits open at `as_of`, largest first; their count and
    booked total over all of them."""
    found = ledger.customer_credits(entity.id, as_of, min(limit, CREDITS_MAX))
    return {"legal_entity": entity.id, "currency": entity.currency,
            "as_of": as_of.isoformat(), "count": found.count,
            "total": str(found.booked_total.amount),
            "credits": [_credit(item) for item in found.items]}
