"""Golden revenue cases written in TOML, in the domain's own words (contract in, figures out).

A case file holds `[contract]`, `[[lines]]`, `[[ssp]]`, optional `[terms]`, `[[variable]]`,
`[[events]]` (applied in order) and `[expect]`. The figures in `[expect]` are worked out by
hand in docs/revrec/cases.md; `check_case` compares every one of them.
"""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ContractBooked,
    ContractModified,
    CreditMemoApplied,
    Granularity,
    InvoiceRecorded,
    ModificationFacts,
    PriceChangeKind,
    ProgressReported,
    RecognitionPattern,
    RecognitionTerms,
    RevenueContractState,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    VariableConsideration,
    balances,
    obligation_schedule,
    period_journal,
    remaining_performance_obligations,
    replay,
)

CASES = Path(__file__).parent / "cases"
ACCOUNTS = {"deferred_revenue": "2400", "revenue": "4000", "contract_asset": "1250",
            "unbilled_receivable": "1260"}


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _day(text: str) -> date:
    return date.fromisoformat(text)


class Case:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.currency: str = doc["contract"]["currency"]

    def money(self, text: str) -> Money:
        return Money.of(text, self.currency)

    def line(self, raw: dict[str, Any]) -> ContractLine:
        c = self.doc["contract"]
        return ContractLine(raw["id"], raw["product"], raw.get("price", "price"),
                            raw["quantity"], self.money(raw["unit_price"]),
                            _day(raw.get("start", c["start"])), _day(raw.get("end", c["end"])))

    def contract(self, lines: list[dict[str, Any]], version: int = 1) -> SubscriptionContract:
        c = self.doc["contract"]
        return SubscriptionContract(c["id"], "cus_case", c.get("entity", "le_us"),
                                    self.currency, _day(c["start"]), _day(c["end"]),
                                    BillingFrequency(c.get("billing", "annual")),
                                    tuple(self.line(li) for li in lines), version)

    def ssps(self, raw: list[dict[str, Any]]) -> tuple[StandaloneSellingPrice, ...]:
        return tuple(StandaloneSellingPrice(s["product"], self.money(s["amount"]),
                                            _day(s.get("from", "2000-01-01")))
                     for s in raw)

    def terms(self) -> RecognitionTerms:
        t = self.doc.get("terms", {})
        patterns = tuple((li["product"], RecognitionPattern(li.get("pattern", "ratable")))
                         for li in self.doc["lines"])
        variable = tuple(
            VariableConsideration(v["id"], self.money(v["amount"]), v.get("obligation"),
                                  Period(_day(v["from"]), _day(v["to"])) if "from" in v
                                  else None)
            for v in self.doc.get("variable", []))
        return RecognitionTerms(patterns, Granularity(t.get("granularity", "day")),
                                frozenset(t.get("residual", [])),
                                frozenset(t.get("discount", [])), variable)

    def booked(self) -> ContractBooked:
        return ContractBooked("evt_booked", self.contract(self.doc["lines"]),
                              self.ssps(self.doc["ssp"]), self.terms())

    def events(self) -> list[RevenueEvent]:
        built: list[RevenueEvent] = []
        version = 1
        for raw in self.doc.get("events", []):
            if raw["type"] == "modify":
                version += 1
            built.append(self.event(raw, version))
        return built

    def event(self, raw: dict[str, Any], version: int) -> RevenueEvent:
        kind, eid = raw["type"], raw["id"]
        if kind == "modify":
            new = self.contract(raw["lines"], version)
            amendment = ContractAmendment(f"amd_{eid}", new.id, version,
                                          _day(raw["effective"]), "case", (), new)
            facts = ModificationFacts(raw.get("added_distinct", True),
                                      raw.get("priced_at_ssp", False),
                                      frozenset(raw.get("not_distinct", [])))
            return ContractModified(eid, amendment, facts,
                                    self.ssps(raw.get("ssp", self.doc["ssp"])))
        if kind == "price_change":
            period = (Period(_day(raw["from"]), _day(raw["to"])) if "from" in raw else None)
            return TransactionPriceChanged(eid, _day(raw["effective"]),
                                           self.money(raw["amount"]),
                                           PriceChangeKind(raw["kind"]),
                                           frozenset(raw.get("obligations", [])), period)
        if kind == "delivered":
            return UnitsDelivered(eid, raw["obligation"], _day(raw["on"]), raw["quantity"])
        if kind == "progress":
            return ProgressReported(eid, raw["obligation"], _day(raw["on"]),
                                    Decimal(raw["percent"]))
        if kind == "invoice":
            return InvoiceRecorded(eid, self.invoice(raw))
        if kind == "credit_memo":
            return CreditMemoApplied(eid, self.memo(raw))
        raise ValueError(f"unknown event type {kind}")

    def document_lines(self, raw: dict[str, Any]) -> tuple[DocumentLine, ...]:
        return tuple(DocumentLine(li["line"], li["product"], "case", 1,
                                  self.money(li["amount"]), Money.zero(self.currency),
                                  _day(li["from"]), _day(li["to"])) for li in raw["lines"])

    def _totals(self, lines: tuple[DocumentLine, ...]) -> tuple[Money, Money, Money]:
        subtotal = sum((li.amount for li in lines), Money.zero(self.currency))
        return subtotal, Money.zero(self.currency), subtotal

    def invoice(self, raw: dict[str, Any]) -> Invoice:
        lines = self.document_lines(raw)
        c = self.doc["contract"]
        return Invoice(raw["id"], raw["id"], "cus_case", c["id"], None, c.get("entity", "le_us"),
                       self.currency, _day(raw["on"]), _day(raw["on"]), lines,
                       *self._totals(lines))

    def memo(self, raw: dict[str, Any]) -> CreditMemo:
        lines = self.document_lines(raw)
        return CreditMemo(raw["id"], raw["id"], raw["invoice"], "cus_case",
                          self.doc["contract"].get("entity", "le_us"), self.currency,
                          _day(raw["on"]), raw["reason"], lines, *self._totals(lines))

    def state(self) -> RevenueContractState:
        return replay(self.booked(), self.events())


def check_case(path: Path) -> None:
    case = Case(load(path))
    state = case.state()
    expect = case.doc["expect"]
    failures = [*_check_prices(case, state, expect), *_check_decisions(case, state, expect),
                *_check_schedules(case, state, expect), *_check_positions(case, state, expect)]
    assert not failures, f"{path.name}:\n" + "\n".join(failures)


def _diff(what: str, got: object, want: object) -> list[str]:
    return [] if got == want else [f"{what}: got {got}, expected {want}"]


def _check_prices(case: Case, state: RevenueContractState, expect: dict[str, Any]) -> list[str]:
    out = []
    if "transaction_price" in expect:
        out += _diff("transaction price", state.transaction_price,
                     case.money(expect["transaction_price"]))
    for ob_id, amount in expect.get("allocated", {}).items():
        out += _diff(f"allocated {ob_id}", state.obligation(ob_id).allocated_price,
                     case.money(amount))
    return out


def _check_decisions(case: Case, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for got, want in zip(state.decisions, expect.get("decisions", []), strict=True):
        out += _diff("treatment", got.treatment.value, want["treatment"])
        out += _diff("paragraph", got.paragraph, want["paragraph"])
        for ob_id, amount in want.get("catch_up", {}).items():
            out += _diff(f"catch-up {ob_id}", dict(got.catch_up).get(ob_id),
                         case.money(amount))
    return out


def _check_schedules(case: Case, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for ob_id, months in expect.get("schedule", {}).items():
        sched = obligation_schedule(state, ob_id)
        sched.to_revenue_schedule()
        by_month = {f"{li.period.start:%Y-%m}": li.amount for li in sched.lines}
        for month, amount in months.items():
            if month == "version":
                out += _diff(f"{ob_id} version", sched.version, amount)
            else:
                out += _diff(f"{ob_id} {month}", by_month.get(month, Money.zero(case.currency)),
                             case.money(amount))
    return out


def _check_positions(case: Case, state: RevenueContractState,
                     expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for day, want in expect.get("balances", {}).items():
        got = balances(state, _day(day))
        for field, amount in want.items():
            out += _diff(f"{field} at {day}", getattr(got, field), case.money(amount))
    for day, want in expect.get("rpo", {}).items():
        rpo = remaining_performance_obligations(state, _day(day))
        out += _diff(f"RPO current at {day}", rpo.current, case.money(want["current"]))
        out += _diff(f"RPO non-current at {day}", rpo.non_current,
                     case.money(want["non_current"]))
    for month, want in expect.get("journal", {}).items():
        start = _day(f"{month}-01")
        period = Period(start, date(start.year + start.month // 12, start.month % 12 + 1, 1))
        entry = period_journal([state], state.legal_entity, period, ACCOUNTS)
        lines = {} if entry is None else {
            f"{li.side.value}:{li.account}": li.amount for li in entry.lines}
        out += _diff(f"journal {month}", lines, {k: case.money(v) for k, v in want.items()})
    return out
