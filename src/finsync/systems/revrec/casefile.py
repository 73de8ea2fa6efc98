"""Revenue case files: one contract as an accountant states it, in JSON (pure: text in,
the engine's inputs out). The format is docs/revrec/case-files.md, its JSON Schema
docs/revrec/case.schema.json.

Rules:
- A case holds `contract`, `obligations`, optional `standalone_selling_prices`, `terms`,
  `variable_consideration`, customer `options` (`caseoption`), dated `events` (applied in
  canonical order, `order`) and, for golden tests, `expect`; `format` (if given) is
  `finsync-revenue-case/1`; `title` and `notes` are prose.
- Every problem is a `CaseFileError` naming the field path (`events[2].facts.
  added_goods_distinct: required`); an engine refusal while replaying names its event.
- Patterns (per product) and SSPs (one effective-dated timeline per product) are gathered
  from the whole file before the contract is booked, since a modification may add products.
- Modification facts left out are derived as `facts.derive_facts` does for the service.
- `terms.bundles` name obligations stated at booking (a bundle's price is observed for the
  booked lines), each in one bundle at most; the engine checks the rest (606-10-32-37).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

from finsync.domain import json_limits
from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.errors import MappingError
from finsync.systems.revrec.allocation import Bundle, VariableConsideration
from finsync.systems.revrec.casecontract import CaseContract, read_header
from finsync.systems.revrec.caseevent import EventReader, PendingModification
from finsync.systems.revrec.caseoption import read_option
from finsync.systems.revrec.casereader import CaseFileError, Node, built, opt_items, opt_strings
from finsync.systems.revrec.engine import apply_event, book_contract
from finsync.systems.revrec.errors import RevenueError
from finsync.systems.revrec.event import ContractBooked, ContractModified, RevenueEvent
from finsync.systems.revrec.facts import derive_facts
from finsync.systems.revrec.order import keyed
from finsync.systems.revrec.pattern import Granularity
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import CONCESSION_REASONS, RecognitionTerms

__all__ = ["FORMAT", "CaseFileError", "RevenueCase", "load_case"]

FORMAT = "finsync-revenue-case/1"
TEXT_MAX = 10_000_000  # characters in one case file; a bound, not a target
_ROOT = ("$schema", "format", "title", "notes", "contract", "obligations",
         "standalone_selling_prices", "terms", "variable_consideration", "options", "events",
         "expect")
TERMS_FIELDS = ("granularity", "residual_products", "discount_obligations",
                "concession_reasons", "progress_rounding", "bundles")
BUNDLE_FIELDS = ("id", "obligations", "price", "note")


@dataclass(frozen=True, slots=True)
class CaseEvent:
    path: str  # where the file states it, e.g. "events[2]"
    event: RevenueEvent


@dataclass(frozen=True, slots=True)
class RevenueCase:
    title: str
    notes: tuple[str, ...]
    booked: ContractBooked
    events: tuple[CaseEvent, ...]
    expect: Mapping[str, object]

    def with_granularity(self, granularity: Granularity) -> RevenueCase:
        terms = replace(self.booked.terms, granularity=granularity)
        return replace(self, booked=replace(self.booked, terms=terms))

    def state(self) -> RevenueContractState:
        """Book the contract and apply every event in canonical order (`order`: the file's
        order does not matter); a refusal names the event's path."""
        try:
            state = book_contract(self.booked)
        except RevenueError as exc:
            raise CaseFileError("obligations", f"{exc.code}: {exc}") from exc
        keys = dict(zip((id(e) for e in self.events), keyed(e.event for e in self.events),
                        strict=True))
        for item in sorted(self.events, key=lambda e: keys[id(e)][0]):
            try:
                state = apply_event(state, item.event)
            except RevenueError as exc:
                raise CaseFileError(item.path, f"{exc.code}: {exc}") from exc
        return state


def load_case(text: str) -> RevenueCase:
    if len(text) > TEXT_MAX:
        raise CaseFileError("", f"longer than {TEXT_MAX} characters")
    try:
        json_limits.check(text)  # a file nested past the limit would exhaust the parser's stack
        raw = json.loads(text)
    except MappingError as exc:
        raise CaseFileError("", str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise CaseFileError("", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                            ) from exc
    root = Node(raw).only(*_ROOT)
    fmt = root.opt("format")
    if fmt is not None and fmt.text() != FORMAT:
        raise fmt.fail(f"must be {FORMAT!r}")
    case = CaseContract(read_header(root.field("contract")))
    lines = case.lines(root.field("obligations"), case.header.end, date.min)
    booked_ids = frozenset(line.line_id for line in lines)
    for ssp in opt_items(root, "standalone_selling_prices"):
        case.read_ssp(ssp, date.min)
    booked_contract = built("contract", lambda: case.contract(lines, 1))
    options = tuple(read_option(item, case) for item in opt_items(root, "options"))
    reader = EventReader(case, booked_contract, {o.option_id for o in options})
    read = [(item.path, reader.read(item)) for item in opt_items(root, "events")]
    terms = replace(_terms(root, case, booked_ids), options=options)
    prices = case.timeline()
    events = tuple(CaseEvent(path, _finished(item, prices, terms)) for path, item in read)
    booked = ContractBooked("evt_booked", booked_contract, prices, terms)
    return RevenueCase(_title(root), opt_strings(root, "notes"), booked, events,
                       _expect(root))


def _finished(item: RevenueEvent | PendingModification,
              prices: tuple[StandaloneSellingPrice, ...],
              terms: RecognitionTerms) -> RevenueEvent:
    if not isinstance(item, PendingModification):
        return item
    facts = item.facts or derive_facts(item.before, item.amendment, prices, terms)
    return ContractModified(item.event_id, item.amendment, facts, prices)


def _terms(root: Node, case: CaseContract, booked: frozenset[str]) -> RecognitionTerms:
    node = root.opt("terms")
    variable = tuple(_variable(item, case) for item in opt_items(root, "variable_consideration"))
    patterns = tuple(sorted(case.patterns.items()))
    if node is None:
        return RecognitionTerms(patterns, variable_consideration=variable)
    node.only(*TERMS_FIELDS)
    chosen = node.opt("granularity")
    granularity = Granularity.DAY if chosen is None else Granularity(
        chosen.choice(g.value for g in Granularity))
    reasons = CONCESSION_REASONS
    if node.has("concession_reasons"):
        reasons = frozenset(opt_strings(node, "concession_reasons"))
    bundles = tuple(_bundle(item, case, booked) for item in opt_items(node, "bundles"))
    step = node.opt("progress_rounding")
    rounding = None if step is None else step.decimal()
    residual = frozenset(opt_strings(node, "residual_products"))
    discount = frozenset(opt_strings(node, "discount_obligations"))
    return built("terms.progress_rounding", lambda: RecognitionTerms(
        patterns, granularity, residual, discount, variable, reasons,
        progress_rounding=rounding, bundles=bundles))


def _bundle(node: Node, case: CaseContract, booked: frozenset[str]) -> Bundle:
    node.only(*BUNDLE_FIELDS)
    members = node.field("obligations")
    names = members.strings()
    seen: set[str] = set()
    for item, name in zip(members.items(), names, strict=True):
        if name not in booked:
            raise item.fail(f"{name!r} is not an obligation stated at booking")
        if name in seen:
            raise item.fail(f"{name!r} is named twice")
        seen.add(name)
    return Bundle(node.field("id").text(), frozenset(names), case.money(node.field("price")))


def _variable(node: Node, case: CaseContract) -> VariableConsideration:
    node.only("id", "amount", "obligation", "period", "note")
    obligation, period = node.opt("obligation"), node.opt("period")
    span = None
    if period is not None:
        period.only("from", "to")
        begin, end = period.field("from").day(), period.field("to").day()
        span = built(period.path, lambda: Period(begin, end))
    return VariableConsideration(node.field("id").text(), case.money(node.field("amount")),
                                 None if obligation is None else obligation.text(), span)


def _title(root: Node) -> str:
    title = root.opt("title")
    return "" if title is None else title.text()


def _expect(root: Node) -> Mapping[str, object]:
    expect = root.opt("expect")
    if expect is None:
        return {}
    if not isinstance(expect.value, dict):
        raise expect.fail("must be an object")
    return expect.value
