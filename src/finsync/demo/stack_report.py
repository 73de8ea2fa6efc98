"""The real-stack demo's report: the embedded demo's sections (invoices, journal entries,
revenue per month, reconciliation, exceptions, closes, replay, audit), each read from the
system that owns it, plus the stack and the reference steps that ran or were skipped.

Rules:
- Invoices are Stripe's (its numbers, its amounts: `amount_paid`, `amount_remaining`, the
  credit notes' amounts), in major units of their currency.
- Journal entries are what the hub delivered to the ERP (Tryton's move ids, with their
  correlation ids); the trial balance is Tryton's, through the ledger port.
- Revenue recognised per month is the revenue account's credit minus debit over the journals
  the month-end closes posted (as the embedded demo's report computes it).
- Reconciliation is run as of the last day of the last month closed.
- Correlation chains are complete when the threads of the subscription, its invoices and
  their payments hold every milestone of the chain between them (contract accepted, invoice
  posted, payment applied, revenue schedule created).
- `ok`: reconciliation has no break and no variance, nothing in the exception queue is
  unresolved, every close closed, replay left the books as they were, and no step failed
  (skipped steps say why and do not fail the demo: they are what the Stripe at hand cannot
  do); `problems` says which of these did not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from finsync.bootstrap import Finance
from finsync.demo import report as embedded
from finsync.demo.stack_config import ENTITY, StackSettings
from finsync.demo.stripe_steps import Capabilities, StripeBusiness
from finsync.domain.clock import month_period
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.domain.status import DeliveryStatus
from finsync.hub.replay import ReplayFilter
from finsync.hub.usage import UsageIntake
from finsync.recon.service import net_revenue_accounts

if TYPE_CHECKING:
    from finsync.demo.stack import Year

STACK = "stripe-tryton"


def report(finance: Finance, business: StripeBusiness, year: Year, settings: StackSettings,
           can: Capabilities, usage: UsageIntake | None) -> dict[str, Any]:
    hub = finance.hub
    as_of = _as_of(year)
    recon = finance.recon.run(as_of)
    before = trial_balance(finance, as_of)
    replayed = hub.replay(ReplayFilter(everything=True))
    _drain(finance)
    after = trial_balance(finance, as_of)
    thread = f"stripe:{business.ids.subscription}"
    timeline = hub.timeline(thread)
    invoices = business.invoices()
    reached = {m["name"] for t in _threads(thread, invoices) for m in hub.timeline(t)}
    revenue_account = net_revenue_accounts(finance.ports.revenue().account_map())
    result: dict[str, Any] = {
        "stack": {"name": STACK, "stripe": settings.stripe_url,
                  "stripe_lacks": dict(can.missing), "erp": f"tryton {settings.tryton_url} "
                  f"database {settings.tryton_database}", "hub_store": _hidden(finance)},
        "steps": year.steps,
        "invoices": [stripe_invoice(i) for i in invoices],
        "journal_entries": [{"target": p.target, "id": p.external_id,
                             "correlation_id": p.correlation_id}
                            for p in hub.delivered(finance.ports.ledgers) if p.posting],
        "revenue_recognized": _by_month(year.journals, revenue_account),
        "reconciliation": embedded.reconciliation(recon),
        "exceptions": embedded.exceptions(finance.triage.listing(status=None)),
        "duplicates_ignored": hub.status()["duplicates_ignored"],
        "parked_out_of_order": year.parked,
        "correlation_chains_complete": set(embedded.CHAIN) <= reached,
        "amendment_correlation_id": thread,
        "amendment_timeline": [{"milestone": m["name"], "system": m["target"],
                                "at": m["recorded_at"].isoformat()} for m in timeline],
        "amendment_status": hub.transaction_status(thread),
        "closes": year.closes,
        "triage_actions": [],
        "faults": [],  # the embedded demo injects faults; here only what really happens
        "books_unchanged_by_replay": before == after,
        "replay": {"events": replayed.events, "deliveries_resent": replayed.requeued},
        "trial_balance": {ENTITY: after},
        "usage": _usage(year.metered, usage),
        "status": hub.status(),
        "audit": finance.audit.verify().as_json(),
    }
    result["problems"] = problems(result)
    result["ok"] = not result["problems"]
    return result


def stripe_invoice(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One Stripe invoice as the embedded demo's report shows an invoice."""
    currency = str(obj["currency"]).upper()

    def major(minor: object) -> str:
        return str(Money.from_minor(int(minor or 0), currency).amount)  # type: ignore[call-overload]

    remaining = obj.get("amount_remaining")
    if remaining is None:  # older shapes (localstripe): what is due and not paid
        remaining = max(int(obj.get("amount_due") or 0) - int(obj.get("amount_paid") or 0), 0)
    credited = int(obj.get("post_payment_credit_notes_amount") or 0) + int(
        obj.get("pre_payment_credit_notes_amount") or 0)
    issued = (obj.get("status_transitions") or {}).get("finalized_at") or obj.get("created")
    parent = (obj.get("parent") or {}).get("subscription_details") or {}
    subscription = parent.get("subscription") or obj.get("subscription")
    return {"number": obj.get("number") or obj["id"], "id": obj["id"],
            "issue_date": _day(issued), "contract_version": None, "total": major(obj.get("total")),
            "credited": major(credited), "paid": major(obj.get("amount_paid")),
            "due": major(remaining), "currency": currency, "status": obj.get("status"),
            "correlation_id": f"stripe:{subscription or obj['id']}"}


def _threads(subscription: str, invoices: Sequence[Mapping[str, Any]]) -> set[str]:
    """The correlation ids of the subscription, its invoices and their payments (the
    connector threads a payment by what Stripe's event is about)."""
    found = {subscription}
    for invoice in invoices:
        found.add(f"stripe:{invoice['id']}")
        intent = invoice.get("payment_intent")
        if isinstance(intent, str | dict):
            found.add(f"stripe:{intent['id'] if isinstance(intent, dict) else intent}")
    return found


def trial_balance(finance: Finance, as_of: date) -> dict[str, str]:
    rows = finance.ports.ledger().trial_balance(ENTITY, as_of)
    return {r.account: str(r.balance.amount) for r in rows}


def problems(result: Mapping[str, Any]) -> list[str]:
    """What keeps the year from having reconciled to zero (nothing: it did)."""
    found = [f"{c['name']} ({c['legal_entity']}): {c['breaks']} breaks, variance "
             f"{c['variance']} {c['currency']}"
             for c in result["reconciliation"]["checks"]
             if c["breaks"] or Money.of(c["variance"], c["currency"]).amount != 0]
    found += [f"close {c['period']}: {c['status']}" for c in result["closes"]
              if c["status"] != "closed"]
    found += ["no month was closed"] if not result["closes"] else []
    found += [f"step failed: {s['step']}: {s['detail']}" for s in result["steps"]
              if s["status"] == "failed"]
    if result["exceptions"]["open"]:
        found.append(f"{result['exceptions']['open']} exceptions unresolved")
    if not result["books_unchanged_by_replay"]:
        found.append("replaying the events changed the books")
    return found


def _by_month(journals: Sequence[JournalEntry], account: Sequence[str]) -> dict[str, str]:
    """Revenue per posting month over the closes' journals (all of them close journals)."""
    return {month: str(amount.amount) for month, amount
            in sorted(embedded.revenue_by_period(journals, account).items())}


def _as_of(year: Year) -> date:
    if not year.closes:
        raise ValueError("the year closed no month")
    return month_period(year.closes[-1]["period"]).end - timedelta(days=1)


def _drain(finance: Finance) -> None:
    hub = finance.hub
    for _ in range(20):
        hub.run_until_idle()
        deliveries = hub.status()["deliveries"]
        if not deliveries.get(DeliveryStatus.PENDING) and not deliveries.get(
                DeliveryStatus.IN_FLIGHT):
            return


def _usage(metered: Mapping[str, int], usage: UsageIntake | None) -> dict[str, Any]:
    if usage is None:
        return {"taken": False, "why": "this Stripe has no meters: no meter event was made"}
    run = usage.aggregate()
    return {"taken": True, **metered, "totals": run.totals, **usage.counts()}


def _hidden(finance: Finance) -> str:
    return finance.hub.engine.url.render_as_string(hide_password=True)


def _day(moment: object) -> str | None:
    if not isinstance(moment, int):
        return None
    return datetime.fromtimestamp(moment, UTC).date().isoformat()
