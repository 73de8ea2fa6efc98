"""What finance reads after the demo's year: invoices, books, revenue per month,
reconciliation, the exception queue, and whether each injected fault was caught.

Rules:
- Amounts are decimal strings, exactly as the system that owns them holds them; dates and
  moments are ISO 8601. A total over documents is per currency.
- Revenue recognised per month is credit minus debit on the revenue account, over the
  journals the period close posted (correlation id `close:…`), per posting month.
- A fault counts as caught when the control that owns it acted: the duplicate was ignored,
  the out-of-order amendment was parked and its `missing_revrec_reference` settled, the late
  payment's `closed_period` settled, the body that is not JSON's `mapping_error` settled. An
  exception class is settled when it was raised and none of its exceptions is unresolved.
- Correlation chains are complete when every posting delivered to a ledger is the entry of
  the event that caused it (same correlation id), every entry's correlation id leads back
  to a delivery, and the amendment's milestones include the whole chain.
- The CPQ versions are listed in version order as CPQ approved them (kind, quote id, the
  day it takes effect), each with its order's state as the hub holds it, the version of
  billing's contract it made, and the quote-to-cash milestones of its quote id: each the
  first time it was recorded (a quote's monthly invoices post again and again), in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from finsync.demo.workflow import DUPLICATE, LATE_PAYMENT, NOT_JSON, OUT_OF_ORDER
from finsync.domain.commercial import CommercialContract
from finsync.domain.errors import ExceptionClass
from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money
from finsync.domain.status import ExceptionStatus
from finsync.hub.cpq_status import ContractStatus, MilestoneSeen
from finsync.hub.milestone import Milestone
from finsync.hub.service import Delivered
from finsync.recon.model import Report
from finsync.systems.billing.service import InvoiceSummary
from finsync.systems.ledger.service import LedgerService

CHAIN = (Milestone.CONTRACT_ACCEPTED, Milestone.INVOICE_POSTED, Milestone.PAYMENT_APPLIED,
         Milestone.REVENUE_SCHEDULE_CREATED)
SETTLED = (ExceptionStatus.RESOLVED, ExceptionStatus.IGNORED)
CLOSE_PREFIX = "close:"


def invoice(s: InvoiceSummary) -> dict[str, Any]:
    return {"number": s.number, "issue_date": s.issue_date.isoformat(),
            "contract_version": s.contract_version, "total": str(s.total.amount),
            "credited": str(s.credited.amount), "paid": str(s.paid.amount),
            "due": str(s.amount_due.amount), "currency": s.total.currency,
            "correlation_id": s.correlation_id}


def books(ledger: LedgerService, as_of: date) -> dict[str, Any]:
    """Every journal entry, and each entity's trial balance as of a date."""
    entities = [e for e, _ in ledger.entities()]
    return {
        "entries": [{"id": e.id, "entity": e.legal_entity, "date": e.posting_date.isoformat(),
                     "memo": e.memo, "correlation_id": e.correlation_id,
                     "lines": [[ln.account, ln.side.value, str(ln.amount)] for ln in e.lines]}
                    for e in ledger.entries()],
        "trial_balance": {e: {r.account: str(r.balance) for r in ledger.trial_balance(e, as_of)}
                          for e in entities},
    }


def revenue_recognised(entries: Iterable[JournalEntry],
                       accounts: str | Collection[str]) -> dict[str, str]:
    """Net revenue per posting month from the journals the period close posted (the ERP's
    entries of one entity: its functional currency)."""
    closing = [e for e in entries if (e.correlation_id or "").startswith(CLOSE_PREFIX)]
    return {month: str(amount.amount)
            for month, amount in sorted(revenue_by_period(closing, accounts).items())}


def revenue_by_period(journals: Iterable[JournalEntry],
                      accounts: str | Collection[str]) -> dict[str, Money]:
    """Credit minus debit on the revenue accounts, per posting month (a sum in Money: a
    line in another currency is refused, never added)."""
    chosen = {accounts} if isinstance(accounts, str) else set(accounts)
    totals: dict[str, Money] = {}
    for entry in journals:
        month = entry.posting_date.strftime("%Y-%m")
        for line in entry.lines:
            if line.account in chosen:
                signed = line.amount if line.side is Side.CREDIT else -line.amount
                totals[month] = totals[month] + signed if month in totals else signed
    return totals


def reconciliation(report: Report) -> dict[str, Any]:
    checks = [{"name": c.name, "legal_entity": c.legal_entity,
               "variance": str(c.variance.amount), "currency": c.currency,
               "items": c.item_count, "breaks": len(c.breaks), "notes": list(c.notes)}
              for c in report.checks]
    # Per currency, as `finsync reconcile --json` gives it: two currencies never add up.
    totals = {currency: str(m.amount) for currency, m in sorted(report.total_variance().items())}
    return {"as_of": report.as_of.isoformat(), "checks": checks, "total_variance": totals}


def exceptions(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The queue by status and class, and each exception as finance sees it."""
    fields = ("id", "class", "status", "amount_at_stake", "correlation_id", "summary",
              "resolution_note")
    return {
        "open": sum(1 for e in rows if e["status"] not in SETTLED),
        "resolved": sum(1 for e in rows if e["status"] == ExceptionStatus.RESOLVED),
        "ignored": sum(1 for e in rows if e["status"] == ExceptionStatus.IGNORED),
        "by_class": dict(Counter(e["class"] for e in rows)),
        "items": [{k: _plain(e[k]) for k in fields} for e in rows],
    }


def faults(report: Mapping[str, Any], injected: Sequence[Mapping[str, Any]]
           ) -> list[dict[str, Any]]:
    """Each injected fault, and whether the control that owns it caught it."""
    by_class = report["exceptions"]["by_class"]
    items = report["exceptions"]["items"]

    def settled(klass: ExceptionClass) -> bool:
        return by_class.get(klass, 0) > 0 and all(
            e["status"] in SETTLED for e in items if e["class"] == klass)

    caught = {
        DUPLICATE: report["duplicates_ignored"] >= 1,
        OUT_OF_ORDER: report["parked_out_of_order"] >= 1
        and settled(ExceptionClass.MISSING_REVREC_REFERENCE),
        LATE_PAYMENT: settled(ExceptionClass.CLOSED_PERIOD),
        NOT_JSON: settled(ExceptionClass.MAPPING_ERROR),
    }
    return [{**f, "caught": caught.get(f["fault"], False)} for f in injected]


def chains_complete(postings: Sequence[Delivered], entries: Iterable[JournalEntry],
                    milestones: Iterable[str]) -> bool:
    by_id = {e.id: e for e in entries}
    forward = all(by_id[p.external_id].correlation_id == p.correlation_id for p in postings)
    backward = {e.correlation_id for e in by_id.values()} <= {p.correlation_id
                                                              for p in postings}
    whole = set(CHAIN) <= set(milestones)
    return forward and backward and whole


def cpq(sent: Sequence[CommercialContract], status: ContractStatus | None,
        billing_versions: Mapping[str, int]) -> dict[str, Any]:
    """The CPQ versions of the demo's contract and what became of each (`billing_versions`:
    quote id -> the version of billing's contract it made)."""
    held = {v.quote_id: v for v in status.versions} if status is not None else {}
    versions = []
    for contract in sorted(sent, key=lambda c: c.version):
        seen = held.get(contract.quote_id)
        versions.append({
            "version": contract.version, "kind": contract.kind.value,
            "quote_id": contract.quote_id,
            "effective_date": contract.effective_date.isoformat(),
            "order": None if seen is None or seen.order_state is None
            else seen.order_state.value,
            "billing_version": billing_versions.get(contract.quote_id),
            "milestones": [] if seen is None else _first_milestones(seen.milestones)})
    return {"contract_id": status.contract_id if status else None,
            "catalog_version": status.catalog_version if status else None,
            "versions": versions}


def _first_milestones(seen: Iterable[MilestoneSeen]) -> list[dict[str, str]]:
    first: dict[str, datetime] = {}
    for milestone in seen:
        first.setdefault(milestone.name, milestone.recorded_at)
    return [{"milestone": name, "at": at.isoformat()} for name, at in first.items()]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
