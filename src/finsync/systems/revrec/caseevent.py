"""Reading the dated events of a revenue case file into the engine's events.

Rules:
- Every event has `type`, `id` (unique in the file; the engine's idempotency id) and `date`,
  and may carry a `note`. Events apply in file order.
- `delivery` (obligation, quantity) and `progress` (obligation, and either percent_complete
  0..100 or costs_incurred with total_expected_costs, optional uninstalled_materials).
- `change_order`: an approved change in scope or claim whose price is not agreed
  (obligation, `estimate`: the constrained estimate of its change in price, `description`).
- A credit memo line or a price change may carry `delivered` {amount (default: all of it),
  quantity (units, or "all": every unit delivered by the date; the default), delivery (an
  earlier `delivery` event of the same obligation)}: the part that relates to what was
  already delivered.
- `modification`: `obligations` is the whole contract after the change (a line left out is
  removed); optional `end` (new contract end), `reason`, `standalone_selling_prices` (in
  force from the date) and `facts`; without `facts` they are derived (`facts.derive_facts`).
- `price_change`: signed `amount`, `kind`, optional `obligations` (606-10-32-44), `period`
  and `promised_before` (an earlier modification event's id: 606-10-32-45(a)).
- `invoice` and `credit_memo`: `lines` of (obligation, amount, optional from/to: default the
  obligation's service period); a credit memo has a `reason`, an optional `treatment` and the
  `invoice` it credits (a `document` id of an earlier invoice). Documents are numbered by
  their `document` field, else the event id.
- `usage` (obligation, quantity) and `refund` (amount, optional obligation and reason).
- `option_exercised` (option, optional quantity renewed, optional from/to: the span over
  which the goods bought transfer) and `option_lapsed` (option), for the case's `options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.invoice import CreditMemo, DeliveredPart, DocumentLine, Invoice, UsageRecord
from finsync.domain.money import Money, total
from finsync.domain.payment import Refund
from finsync.systems.revrec.casecontract import CaseContract
from finsync.systems.revrec.casereader import Node, built, opt_items, opt_strings
from finsync.systems.revrec.event import (
    ChangeOrderApproved,
    CostsReported,
    CreditMemoApplied,
    CreditTreatment,
    InvoiceRecorded,
    OptionExercised,
    OptionLapsed,
    PriceChangeKind,
    ProgressReported,
    RefundRecorded,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    UsageRecorded,
)
from finsync.systems.revrec.modification import ModificationFacts
from finsync.systems.revrec.obligation_id import line_of

EVENT_TYPES = ("delivery", "progress", "modification", "price_change", "invoice",
               "credit_memo", "usage", "refund", "option_exercised", "option_lapsed",
               "change_order")
_COMMON = ("type", "id", "date", "note")
_FIELDS: dict[str, tuple[str, ...]] = {
    "delivery": ("obligation", "quantity"),
    "progress": ("obligation", "percent_complete", "costs_incurred", "total_expected_costs",
                 "uninstalled_materials"),
    "modification": ("obligations", "end", "reason", "standalone_selling_prices", "facts"),
    "price_change": ("amount", "kind", "obligations", "period", "delivered",
                     "promised_before"),
    "invoice": ("document", "lines"),
    "credit_memo": ("document", "invoice", "reason", "treatment", "lines"),
    "usage": ("obligation", "quantity"),
    "refund": ("document", "amount", "obligation", "reason"),
    "option_exercised": ("option", "quantity", "from", "to"),
    "option_lapsed": ("option",),
    "change_order": ("obligation", "estimate", "description"),
}
DOCUMENT_LINE_FIELDS = ("obligation", "amount", "from", "to", "delivered")
DELIVERED_FIELDS = ("amount", "quantity", "delivery")
_COST_FIELDS = ("costs_incurred", "total_expected_costs")


@dataclass(frozen=True, slots=True)
class PendingModification:
    """A modification whose SSPs (and perhaps facts) are known once the whole file is read."""

    event_id: str
    amendment: ContractAmendment
    before: SubscriptionContract
    facts: ModificationFacts | None


class EventReader:
    def __init__(self, case: CaseContract, booked: SubscriptionContract,
                 options: set[str] | None = None) -> None:
        self.case, self.contract = case, booked
        self.options = options or set()
        self.invoices: set[str] = set()
        self.event_ids: set[str] = set()
        self.deliveries: dict[str, str] = {}  # delivery event id -> its obligation
        self.modifications: dict[str, str] = {}  # event id -> amendment id

    def read(self, node: Node) -> RevenueEvent | PendingModification:
        kind = node.field("type").choice(EVENT_TYPES)
        node.only(*_COMMON, *_FIELDS[kind])
        event_id = node.field("id").text()
        if event_id in self.event_ids:
            raise node.field("id").fail(f"event id {event_id!r} is used twice")
        self.event_ids.add(event_id)
        on = node.field("date").day()
        if kind == "modification":
            return self._modification(node, event_id, on)
        return self._simple(kind, node, event_id, on)

    def _simple(self, kind: str, node: Node, event_id: str, on: date) -> RevenueEvent:
        if kind == "delivery":
            obligation = self._obligation(node.field("obligation"))
            self.deliveries[event_id] = obligation
            return UnitsDelivered(event_id, obligation, on, node.field("quantity").integer())
        if kind == "progress":
            return self._progress(node, event_id, on)
        if kind == "change_order":
            description = node.opt("description")
            return ChangeOrderApproved(event_id, self._obligation(node.field("obligation")), on,
                                       self.case.money(node.field("estimate")),
                                       "" if description is None else description.text())
        if kind == "price_change":
            return self._price_change(node, event_id, on)
        if kind == "invoice":
            return InvoiceRecorded(event_id, self._invoice(node, event_id, on))
        if kind == "credit_memo":
            return self._credit_memo(node, event_id, on)
        if kind in ("option_exercised", "option_lapsed"):
            return self._option_event(kind, node, event_id, on)
        if kind == "usage":
            line = self._line(node.field("obligation"))
            usage = UsageRecord(event_id, self.contract.id, line.product_id,
                                node.field("quantity").integer(), on)
            return UsageRecorded(event_id, usage)
        return self._refund(node, event_id, on)

    def _modification(self, node: Node, event_id: str, on: date) -> PendingModification:
        end_node = node.opt("end")
        end = self.contract.end_date if end_node is None else end_node.day()
        for ssp in opt_items(node, "standalone_selling_prices"):
            self.case.read_ssp(ssp, on)
        lines = self.case.lines(node.field("obligations"), end, on)
        before = self.contract
        new = built(node.path, lambda: self.case.contract(lines, before.version + 1, end))
        reason = node.opt("reason")
        amendment = built(node.path, lambda: ContractAmendment(
            f"amd_{event_id}", new.id, new.version, on,
            "case" if reason is None else reason.text(), (), new))
        self.contract = new
        self.modifications[event_id] = amendment.id
        facts = node.opt("facts")
        return PendingModification(event_id, amendment, before,
                                   None if facts is None else self._facts(facts))

    @staticmethod
    def _facts(node: Node) -> ModificationFacts:
        node.only("added_goods_distinct", "priced_at_standalone_selling_price",
                  "remaining_not_distinct", "lines_at_standalone_selling_price")
        return ModificationFacts(
            node.field("added_goods_distinct").flag(),
            node.field("priced_at_standalone_selling_price").flag(),
            frozenset(opt_strings(node, "remaining_not_distinct")),
            frozenset(opt_strings(node, "lines_at_standalone_selling_price")))

    def _progress(self, node: Node, event_id: str,
                  on: date) -> ProgressReported | CostsReported:
        obligation = self._obligation(node.field("obligation"))
        by_costs = [key for key in (*_COST_FIELDS, "uninstalled_materials") if node.has(key)]
        if node.has("percent_complete"):
            if by_costs:
                raise node.field(by_costs[0]).fail("state percent_complete or costs, not both")
            return ProgressReported(event_id, obligation, on,
                                    self._percent(node.field("percent_complete")))
        if not by_costs:
            raise node.fail("needs percent_complete, or costs_incurred and "
                            "total_expected_costs")
        materials = node.opt("uninstalled_materials")
        return CostsReported(event_id, obligation, on,
                             self.case.money(node.field("costs_incurred")),
                             self.case.money(node.field("total_expected_costs")),
                             None if materials is None else self.case.money(materials))

    def _delivered(self, node: Node | None, whole: Money,
                   obligation: str) -> DeliveredPart | None:
        """The `delivered` part of a credit line or a price change (`whole` its amount)."""
        if node is None:
            return None
        node.only(*DELIVERED_FIELDS)
        amount, quantity, delivery = (node.opt("amount"), node.opt("quantity"),
                                      node.opt("delivery"))
        units = None
        if quantity is not None and quantity.value != "all":
            if not isinstance(quantity.value, int):
                raise quantity.fail('must be a number of units or "all"')
            units = quantity.integer(1)
        if delivery is not None and self.deliveries.get(delivery.text()) != obligation:
            raise delivery.fail(f"no earlier delivery {delivery.text()!r} of {obligation}")
        part = whole if amount is None else self.case.money(amount)
        found = built(node.path, lambda: DeliveredPart(
            part, units, None if delivery is None else delivery.text()))
        if not found.fits(whole):
            raise node.fail(f"amount {part} is not a part of {whole} (same sign, not more)")
        return found

    def _price_change(self, node: Node, event_id: str, on: date) -> TransactionPriceChanged:
        kind = PriceChangeKind(node.field("kind").choice(k.value for k in PriceChangeKind))
        named = frozenset(opt_strings(node, "obligations"))
        amount = self.case.money(node.field("amount"))
        delivered = node.opt("delivered")
        if delivered is not None and len(named) != 1:
            raise delivered.fail("a delivered part needs exactly one obligation named")
        period = node.opt("period")
        span = None
        if period is not None:
            period.only("from", "to")
            start, end = period.field("from").day(), period.field("to").day()
            span = built(period.path, lambda: Period(start, end))
        part = None if delivered is None else self._delivered(delivered, amount, *named)
        return TransactionPriceChanged(event_id, on, amount, kind, named, span, part,
                                       self._promised_before(node))

    def _promised_before(self, node: Node) -> str | None:
        """606-10-32-45(a): the id of an earlier modification event of the file."""
        named = node.opt("promised_before")
        if named is None:
            return None
        amendment_id = self.modifications.get(named.text())
        if amendment_id is None:
            raise named.fail(f"names no earlier modification event: {named.text()!r}")
        return amendment_id

    def _document_lines(self, node: Node) -> tuple[DocumentLine, ...]:
        items = node.field("lines").items()
        if not items:
            raise node.field("lines").fail("must hold at least one line")
        return tuple(self._document_line(item) for item in items)

    def _document_line(self, node: Node) -> DocumentLine:
        node.only(*DOCUMENT_LINE_FIELDS)
        obligation = node.field("obligation")
        line = self._line(obligation)
        start, end = node.opt("from"), node.opt("to")
        amount = self.case.money(node.field("amount")).quantize()
        return DocumentLine(obligation.text(), line.product_id, "case", 1, amount,
                            Money.zero(self.case.header.currency),
                            line.start_date if start is None else start.day(),
                            line.end_date if end is None else end.day(),
                            delivered=self._delivered(node.opt("delivered"), amount,
                                                      obligation.text()))

    def _invoice(self, node: Node, event_id: str, on: date) -> Invoice:
        lines, h = self._document_lines(node), self.case.header
        for item, line in zip(node.field("lines").items(), lines, strict=True):
            if line.delivered is not None:
                raise item.field("delivered").fail("only a credit memo line credits what "
                                                   "was delivered")
        document = _document(node, event_id)
        subtotal = total([li.amount for li in lines], h.currency)
        self.invoices.add(document)
        return built(node.path, lambda: Invoice(
            document, document, h.customer_id, h.contract_id, self.contract.version,
            h.legal_entity, h.currency, on, on, lines, subtotal, Money.zero(h.currency),
            subtotal))

    def _credit_memo(self, node: Node, event_id: str, on: date) -> CreditMemoApplied:
        lines, h = self._document_lines(node), self.case.header
        invoice = node.opt("invoice")
        if invoice is not None and invoice.text() not in self.invoices:
            raise invoice.fail(f"no earlier invoice {invoice.text()!r} in this case")
        treatment = node.opt("treatment")
        subtotal = total([li.amount for li in lines], h.currency)
        memo = built(node.path, lambda: CreditMemo(
            _document(node, event_id), _document(node, event_id),
            "inv_case" if invoice is None else invoice.text(), h.customer_id,
            h.legal_entity, h.currency, on, node.field("reason").text(), lines, subtotal,
            Money.zero(h.currency), subtotal))
        return CreditMemoApplied(event_id, memo, None if treatment is None else CreditTreatment(
            treatment.choice(t.value for t in CreditTreatment)))

    def _refund(self, node: Node, event_id: str, on: date) -> RefundRecorded:
        h = self.case.header
        obligation, reason = node.opt("obligation"), node.opt("reason")
        named = None if obligation is None else self._obligation(obligation)
        amount = self.case.money(node.field("amount"))
        document = _document(node, event_id)
        refund = built(node.path, lambda: Refund(
            document, f"pay_{document}", h.customer_id, h.legal_entity, amount, on,
            "refund" if reason is None else reason.text()))
        return RefundRecorded(event_id, refund, named)

    def _option_event(self, kind: str, node: Node, event_id: str,
                      on: date) -> OptionExercised | OptionLapsed:
        option = node.field("option")
        if option.text() not in self.options:
            raise option.fail(f"no option {option.text()!r} in this case's options")
        if kind == "option_lapsed":
            return OptionLapsed(event_id, option.text(), on)
        quantity, start, end = node.opt("quantity"), node.opt("from"), node.opt("to")
        if (start is None) != (end is None):
            raise node.fail("a span of the goods bought needs both from and to")
        span = None if start is None or end is None else built(
            node.path, lambda: Period(start.day(), end.day()))
        return OptionExercised(event_id, option.text(), on,
                               None if quantity is None else quantity.integer(1), span)

    def _line(self, node: Node) -> ContractLine:
        """The contract line an obligation id names (`<line>+v<n>` names its line too)."""
        line_id = line_of(node.text())
        for line in self.contract.lines:
            if line.line_id == line_id:
                return line
        raise node.fail(f"no obligation {node.text()!r} in contract version "
                        f"{self.contract.version}")

    def _obligation(self, node: Node) -> str:
        self._line(node)
        return node.text()

    @staticmethod
    def _percent(node: Node) -> Decimal:
        percent = node.decimal()
        if not 0 <= percent <= 100:
            raise node.fail("must be between 0 and 100")
        return percent


def _document(node: Node, event_id: str) -> str:
    document = node.opt("document")
    return event_id if document is None else document.text()
