"""The Revenue page's read model: the waterfall, the deferred revenue roll-forward, RPO and
one contract's schedule with its revisions, all from the embedded revenue engine's own
reports (`RevenueService`).

Rules:
- The waterfall and RPO are the figures `finsync revrec waterfall` and `finsync revrec rpo`
  print: the same service calls, the same amounts.
- The roll-forward is per month and currency, over the engine's balances at each month
  start: opening + billed - recognised = closing, where opening and closing are the net
  contract position (deferred revenue - contract asset - unbilled receivable) and billed is
  net of the credit memos issued in the month (shown apart). Each row says whether it
  foots, and by how much it does not: a difference is shown, never absorbed.
- A legal entity must be configured (`unknown_entity`); without an embedded revenue engine
  the figures are that system's own (`system_external`).
- Everything asked for is bounded: at most `MONTHS_MAX` months, `CONTRACTS_MAX` contracts.
- Amounts are decimal strings with their currency, never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.domain.clock import month_period
from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.systems.revrec.balance import ContractBalances
from finsync.systems.revrec.errors import UnknownRevenueContractError
from finsync.systems.revrec.report import ContractReport, ReportingPeriod, contract_report
from finsync.systems.revrec.schedule import schedules
from finsync.systems.revrec.service import RevenueService
from finsync.systems.revrec.state import RevenueContractState
from finsync.views.services import SystemExternalError

MONTHS_MAX = 120  # ten years of months
CONTRACTS_MAX = 500


def embedded_revenue(service: RevenueService | None) -> RevenueService:
    if service is None:
        raise SystemExternalError("the revenue engine is an external system: its waterfall, "
                                  "roll-forward and RPO are its own reports")
    return service


def month_span(first: str, last: str) -> tuple[date, date]:
    """`[start of first, end of last)` for two `YYYY-MM` months, within `MONTHS_MAX`."""
    start, end = month_period(first).start, month_period(last).end
    months = (end.year - start.year) * 12 + end.month - start.month
    if months < 1:
        raise DomainError(f"{last} is before {first}")
    if months > MONTHS_MAX:
        raise DomainError(f"{months} months from {first} to {last}; at most {MONTHS_MAX}")
    return start, end


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "currency": currency}


# -- the waterfall ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RevenueWaterfall:
    """Revenue recognised per month and currency over the entity's revenue contracts."""

    legal_entity: str
    months: tuple[str, ...]
    revenue: tuple[tuple[str, tuple[Decimal, ...]], ...]  # (currency, one per month): net
    gross: tuple[tuple[str, tuple[Decimal, ...]], ...] = ()  # before concessions
    contra: tuple[tuple[str, tuple[Decimal, ...]], ...] = ()  # concessions

    def as_json(self) -> dict[str, Any]:
        """`finsync revrec waterfall --json` (legal_entity, months, revenue (net), gross,
        contra), with each currency's net total."""
        def by_month(rows: tuple[tuple[str, tuple[Decimal, ...]], ...]) -> dict[str, Any]:
            return {cur: dict(zip(self.months, (str(a) for a in amounts), strict=True))
                    for cur, amounts in rows}

        return {"legal_entity": self.legal_entity, "months": list(self.months),
                "revenue": by_month(self.revenue), "gross": by_month(self.gross),
                "contra": by_month(self.contra),
                "totals": [_money(sum(amounts, Decimal(0)), cur)
                           for cur, amounts in self.revenue]}


def waterfall(service: RevenueService, entity: str, first: str, last: str) -> RevenueWaterfall:
    """Revenue per month from month `first` to month `last` (YYYY-MM): net, gross and the
    contra revenue between them, as the revenue engine reports them."""
    start, end = month_span(first, last)
    report = service.gross_and_net_by_month(entity, start, end)

    def amounts(rows: tuple[tuple[str, tuple[Money, ...]], ...]
                ) -> tuple[tuple[str, tuple[Decimal, ...]], ...]:
        return tuple((cur, tuple(a.amount for a in per)) for cur, per in rows)

    return RevenueWaterfall(entity, tuple(f"{m.start:%Y-%m}" for m in report.months),
                            amounts(report.net), amounts(report.gross), amounts(report.contra))


# -- the deferred revenue roll-forward ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollForwardRow:
    month: str
    currency: str
    opening: ContractBalances
    closing: ContractBalances
    credited: Decimal
    # Catch-ups the month's stored journal booked for closed periods (the GL's month differs
    # from the engine's by these): (closed period YYYY-MM, net revenue, contra, deferred).
    adjustments: tuple[tuple[str, Decimal, Decimal, Decimal], ...] = ()

    @staticmethod
    def net(at: ContractBalances) -> Decimal:
        """The contract position: a liability (deferred revenue) less the assets."""
        return (at.deferred_revenue.amount - at.contract_asset.amount
                - at.unbilled_receivable.amount)

    @property
    def billed(self) -> Decimal:
        return self.closing.billed.amount - self.opening.billed.amount

    @property
    def recognised(self) -> Decimal:
        return self.closing.recognised.amount - self.opening.recognised.amount

    @property
    def difference(self) -> Decimal:
        """closing - (opening + billed - recognised): zero when the row foots."""
        return self.net(self.closing) - (self.net(self.opening) + self.billed
                                         - self.recognised)

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month, "currency": self.currency,
                "opening": str(self.net(self.opening)),
                "opening_deferred_revenue": str(self.opening.deferred_revenue.amount),
                "opening_contract_asset": str(self.opening.contract_asset.amount
                                              + self.opening.unbilled_receivable.amount),
                "invoiced": str(self.billed + self.credited),
                "credited": str(self.credited), "billed": str(self.billed),
                "recognised": str(self.recognised), "closing": str(self.net(self.closing)),
                "closing_deferred_revenue": str(self.closing.deferred_revenue.amount),
                "closing_contract_asset": str(self.closing.contract_asset.amount
                                              + self.closing.unbilled_receivable.amount),
                "difference": str(self.difference), "foots": self.difference == 0,
                "adjustments": [{"period": period, "revenue": str(revenue),
                                 "contra_revenue": str(contra),
                                 "deferred_revenue": str(deferred)}
                                for period, revenue, contra, deferred in self.adjustments]}


@dataclass(frozen=True, slots=True)
class RollForward:
    legal_entity: str
    rows: tuple[RollForwardRow, ...]

    def as_json(self) -> dict[str, Any]:
        return {"legal_entity": self.legal_entity, "rows": [r.as_json() for r in self.rows],
                "foots": all(r.difference == 0 for r in self.rows),
                "not_footing": sum(1 for r in self.rows if r.difference != 0)}


def roll_forward(service: RevenueService, entity: str, first: str, last: str) -> RollForward:
    """Per month and currency: opening + billed - recognised = closing, checked."""
    start, end = month_span(first, last)
    found = service.balances_by_month(entity, start, end)
    credited = dict(found.credited)
    booked: dict[tuple[str, str], list[tuple[str, Decimal, Decimal, Decimal]]] = {}
    for currency, adjusted in service.adjustments_by_month(entity, start, end):
        for a in adjusted:
            booked.setdefault((f"{a.booked_in:%Y-%m}", currency), []).append(
                (f"{a.adjusts:%Y-%m}", a.revenue.amount, a.contra.amount,
                 a.deferred_revenue.amount))
    rows = []
    for currency, at in found.balances:
        for i in range(len(found.days) - 1):
            month = f"{found.days[i]:%Y-%m}"
            rows.append(RollForwardRow(month, currency, at[i], at[i + 1],
                                       credited[currency][i].amount
                                       if currency in credited else Decimal(0),
                                       tuple(booked.get((month, currency), ()))))
    return RollForward(entity, tuple(rows))


# -- remaining performance obligations --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rpo:
    legal_entity: str
    as_of: date
    rows: tuple[tuple[str, Decimal, Decimal], ...]  # (currency, current, non-current)

    def as_json(self) -> dict[str, Any]:
        """`finsync revrec rpo --json` (legal_entity, as_of, rpo)."""
        return {"legal_entity": self.legal_entity, "as_of": self.as_of.isoformat(),
                "rpo": [{"currency": cur, "current": str(current),
                         "non_current": str(non_current), "total": str(current + non_current)}
                        for cur, current, non_current in self.rows]}


def rpo(service: RevenueService, entity: str, as_of: date) -> Rpo:
    """Remaining performance obligations: within 12 months of `as_of` and after."""
    found = service.entity_remaining_performance_obligations(entity, as_of)
    return Rpo(entity, as_of, tuple((cur, r.current.amount, r.non_current.amount)
                                    for cur, r in found.items()))


# -- contracts and one contract's schedule ----------------------------------------------------
def contracts(service: RevenueService, entity: str, after: str, limit: int) -> dict[str, Any]:
    """The entity's revenue contracts after `after` (id order), at most `limit`."""
    wanted = min(limit, CONTRACTS_MAX)
    heads = service.contract_heads(entity, after, wanted)
    return {"legal_entity": entity, "contracts": [
        {"revenue_contract": rc, "contract": sub, "customer": customer, "currency": currency,
         "version": version} for rc, sub, customer, currency, version in heads],
        "next_after": heads[-1][0] if heads and len(heads) == wanted else None}


def report_json(report: ContractReport, title: str) -> dict[str, Any]:
    """One contract's report as JSON (`finsync revrec run --json`): allocation, each
    modification's treatment with its ASC 606 paragraph and reason, revenue per obligation
    per period, balances at each period end; amounts as decimal strings."""
    labels = [p.label for p in report.revenue.periods]
    return {
        "title": title, "contract": report.contract_id,
        "revenue_contract": report.revenue_contract_id, "currency": report.currency,
        "legal_entity": report.legal_entity, "granularity": report.granularity.value,
        "period": report.reporting_period.value,
        "transaction_price": str(report.transaction_price.amount),
        "allocation": [{
            "obligation": r.obligation_id, "product": r.product_id,
            "pattern": r.pattern.value, "ssp": str(r.standalone_selling_price.amount),
            "stated_price": str(r.stated_price.amount),
            "inception_method": r.inception_method,
            "inception_paragraph": r.inception_paragraph,
            "allocated": str(r.allocated_price.amount), "schedule": r.schedule_reference}
            for r in report.allocation],
        "modifications": [{
            "event": d.event_id, "amendment": d.amendment_id,
            "contract_version": d.contract_version,
            "effective_date": d.effective_date.isoformat(), "treatment": d.treatment.value,
            "paragraph": d.paragraph, "reason": d.reason,
            "catch_up": {ob: str(m.amount) for ob, m in d.catch_up}}
            for d in report.modifications],
        "revenue": {
            "periods": [{"period": p.label, "end": p.end.isoformat()}
                        for p in report.revenue.periods],
            "rows": [{"obligation": r.obligation_id,
                      "amounts": {k: str(v) for k, v in zip(labels, r.amounts, strict=True)},
                      "total": str(r.total)} for r in report.revenue.rows]},
        "balances": [{
            "as_of": b.as_of.isoformat(), "billed": str(b.billed.amount),
            "recognised": str(b.recognised.amount),
            "deferred_revenue": str(b.deferred_revenue.amount),
            "contract_asset": str(b.contract_asset.amount),
            "unbilled_receivable": str(b.unbilled_receivable.amount)}
            for b in report.balances],
    }


def _revisions(state: RevenueContractState) -> list[dict[str, Any]]:
    """Each obligation's schedule revisions: the version, the event that made it, its
    cause (an ASC 606 paragraph or what changed) and detail."""
    references = {s.obligation_id: s.reference for s in schedules(state)}
    return [{"obligation": ob.obligation_id, "schedule": references.get(ob.obligation_id),
             "revisions": [{"version": r.version, "event": r.event_id, "cause": r.cause,
                            "effective": None if r.effective is None
                            else r.effective.isoformat(), "detail": r.detail}
                           for r in ob.revisions]}
            for ob in state.obligations]


def contract_schedule(service: RevenueService, contract_id: str,
                      period: ReportingPeriod) -> dict[str, Any]:
    """One subscription contract's revenue schedule, as stored: the report of
    `finsync revrec run`, plus its customer, version and each schedule's revisions."""
    state = service.state(contract_id)
    if state is None:
        raise UnknownRevenueContractError(f"no revenue contract for {contract_id[:64]!r} "
                                          "(not booked yet)")
    data = report_json(contract_report(state, period), "")
    data.update({"customer": state.contract.customer_id, "version": state.contract.version,
                 "obligations": _revisions(state)})
    return data
