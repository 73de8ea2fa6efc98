"""Reading the contract side of a revenue case file: header, obligations, SSPs, patterns.

Rules:
- `contract` gives the id, currency and term; customer, legal entity and billing frequency
  default to `cus_case`, `le_us` and `annual`. `billing_anchor` (the bill-cycle date, inside
  the term; default the start) and `proration` (`by_day` default, `by_second`,
  `monthly_even`, `partial_months`) say how billing invoices the term, so what the
  contract entitles billing to invoice (stubs included) is its stated price.
- Each obligation is a contract line: `id`, `product`, `unit_price` (per unit per billing
  period for ratable lines, per unit otherwise), `quantity` (default 1), `start`/`end`
  (default: the contract's term), `ramp` steps, `pattern` (default: the pattern the file
  already gave the product, else `ratable`), `ssp` (the product's SSP per unit).
- One product, one pattern: the engine keeps patterns per product.
- SSPs form one effective-dated timeline per product. An SSP stated without `from` is in
  force from the beginning of time; one stated with a modification is in force from its
  date; each runs until the next one of its product unless it states `to`. The same SSP
  stated twice is one; two different SSPs from the same day are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.contract import ContractLine, RampStep, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.proration import ProrationConvention
from finsync.systems.revrec.casereader import CaseFileError, Node, built, opt_items
from finsync.systems.revrec.obligation_id import SEPARATORS
from finsync.systems.revrec.pattern import RecognitionPattern

LINE_FIELDS = ("id", "product", "pattern", "quantity", "unit_price", "start", "end", "ssp",
               "ramp", "note")
SSP_FIELDS = ("product", "amount", "from", "to", "low", "high")


@dataclass(frozen=True, slots=True)
class SspStatement:
    path: str
    product_id: str
    amount: Money
    effective_from: date
    effective_to: date | None = None
    low: Money | None = None
    high: Money | None = None

    def same_price(self, other: SspStatement) -> bool:
        return (self.amount, self.effective_to, self.low, self.high) == (
            other.amount, other.effective_to, other.low, other.high)


@dataclass(frozen=True, slots=True)
class Header:
    contract_id: str
    customer_id: str
    legal_entity: str
    currency: str
    start: date
    end: date
    billing: BillingFrequency
    billing_anchor: date | None = None
    proration: ProrationConvention = ProrationConvention.BY_DAY


def read_header(node: Node) -> Header:
    node.only("id", "customer", "legal_entity", "currency", "start", "end", "billing_frequency",
              "billing_anchor", "proration")
    billing = node.opt("billing_frequency")
    frequency = BillingFrequency.ANNUAL if billing is None else BillingFrequency(
        billing.choice(f.value for f in BillingFrequency))
    customer, entity = node.opt("customer"), node.opt("legal_entity")
    header = Header(node.field("id").text(),
                    "cus_case" if customer is None else customer.text(),
                    "le_us" if entity is None else entity.text(),
                    node.field("currency").text(), node.field("start").day(),
                    node.field("end").day(), frequency, _anchor(node), _proration(node))
    built(node.path, lambda: Money.zero(header.currency))
    if header.end <= header.start:
        raise node.field("end").fail("must be after start")
    anchor = header.billing_anchor
    if anchor is not None and not header.start <= anchor < header.end:
        raise node.field("billing_anchor").fail(
            f"must lie in the term [{header.start}, {header.end})")
    return header


def _anchor(node: Node) -> date | None:
    given = node.opt("billing_anchor")
    return None if given is None else given.day()


def _proration(node: Node) -> ProrationConvention:
    given = node.opt("proration")
    if given is None:
        return ProrationConvention.BY_DAY
    return ProrationConvention(given.choice(c.value for c in ProrationConvention))


class CaseContract:
    """What the file has said so far about the contract: lines, patterns, SSPs."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self.patterns: dict[str, RecognitionPattern] = {}
        self.ssps: list[SspStatement] = []

    def money(self, node: Node) -> Money:
        return node.money(self.header.currency)

    def contract(self, lines: tuple[ContractLine, ...], version: int,
                 end: date | None = None) -> SubscriptionContract:
        h = self.header
        return SubscriptionContract(h.contract_id, h.customer_id, h.legal_entity, h.currency,
                                    h.start, end or h.end, h.billing, lines, version,
                                    billing_anchor=h.billing_anchor, proration=h.proration)

    def lines(self, node: Node, end: date, ssp_from: date) -> tuple[ContractLine, ...]:
        items = node.items()
        if not items:
            raise node.fail("must name at least one obligation")
        lines = tuple(self.line(item, end, ssp_from) for item in items)
        seen: set[str] = set()
        for item, line in zip(items, lines, strict=True):
            if line.line_id in seen:
                raise item.field("id").fail(f"obligation {line.line_id!r} is stated twice")
            seen.add(line.line_id)
        return lines

    def line(self, node: Node, end: date, ssp_from: date) -> ContractLine:
        node.only(*LINE_FIELDS)
        line_id, product = node.field("id").text(), node.field("product").text()
        if any(sep in line_id for sep in SEPARATORS):
            raise node.field("id").fail("'+' and '@' are kept for the engine's own obligation "
                                        "ids")
        self._pattern(node, product)
        quantity = node.opt("quantity")
        ramp = tuple(self._ramp(step) for step in opt_items(node, "ramp"))
        start, stop = node.opt("start"), node.opt("end")
        ssp = node.opt("ssp")
        if ssp is not None:
            self.add_ssp(SspStatement(ssp.path, product, self.money(ssp), ssp_from))
        return built(node.path, lambda: ContractLine(
            line_id, product, "price_case", 1 if quantity is None else quantity.integer(),
            self.money(node.field("unit_price")),
            self.header.start if start is None else start.day(),
            end if stop is None else stop.day(), ramp))

    def _ramp(self, node: Node) -> RampStep:
        node.only("starts_on", "quantity", "unit_price")
        return RampStep(node.field("starts_on").day(), node.field("quantity").integer(),
                        self.money(node.field("unit_price")))

    def _pattern(self, node: Node, product: str) -> None:
        given = node.opt("pattern")
        known = self.patterns.get(product)
        if given is None:
            self.patterns.setdefault(product, RecognitionPattern.RATABLE)
            return
        pattern = RecognitionPattern(given.choice(p.value for p in RecognitionPattern))
        if known is not None and known is not pattern:
            raise given.fail(f"product {product!r} is already {known.value}; one product, "
                             "one pattern")
        self.patterns[product] = pattern

    def read_ssp(self, node: Node, default_from: date) -> None:
        node.only(*SSP_FIELDS)
        start, end = node.opt("from"), node.opt("to")
        low, high = node.opt("low"), node.opt("high")
        if (low is None) != (high is None):
            raise node.fail("an SSP range needs both low and high")
        self.add_ssp(SspStatement(
            node.path, node.field("product").text(), self.money(node.field("amount")),
            default_from if start is None else start.day(), None if end is None else end.day(),
            None if low is None else self.money(low), None if high is None else self.money(high)))

    def add_ssp(self, statement: SspStatement) -> None:
        for known in self.ssps:
            if (known.product_id, known.effective_from) != (statement.product_id,
                                                            statement.effective_from):
                continue
            if known.same_price(statement):
                return
            raise CaseFileError(statement.path, f"conflicts with the SSP of "
                                f"{statement.product_id} stated at {known.path}")
        self.ssps.append(statement)

    def timeline(self) -> tuple[StandaloneSellingPrice, ...]:
        """Every SSP, each running until the next one of its product unless it ends itself."""
        ordered = sorted(self.ssps, key=lambda s: (s.product_id, s.effective_from))
        prices: list[StandaloneSellingPrice] = []
        for i, s in enumerate(ordered):
            following = ordered[i + 1] if i + 1 < len(ordered) else None
            end = s.effective_to
            if end is None and following is not None and following.product_id == s.product_id:
                end = following.effective_from
            prices.append(_price(s, end))
        return tuple(prices)


def _price(s: SspStatement, end: date | None) -> StandaloneSellingPrice:
    return built(s.path, lambda: StandaloneSellingPrice(s.product_id, s.amount,
                                                        s.effective_from, end, s.low, s.high))
