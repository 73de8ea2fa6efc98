"""The one billing command that makes embedded billing's contract what an order says (pure).

Rules:
- Prices on both sides are per unit and per the price's own frequency (120.00 a seat a
  year), as billing keeps them and as `domain.commercial.OrderLine` carries them.
- A line is *in force* from a date when it ends after it. Comparing an order with a
  contract version from its effective date (`differences`): the contract-level terms are
  equal, and every line in force on either side is on both, equal in product, price,
  quantity, unit price, dates and ramp; lines ended on both sides are history.
- An order names its quote and contract and each line once (`check_order`), else it is
  `invalid_order`.
- A new order (`plan_new`) is a `CreateSubscription` correlated to the order id; its usage
  lines' price frequency is the arrears cycle (one frequency: billing rates usage on one).
- An amendment (`plan_amendment`) becomes one `AmendSubscription` with the order id as
  its amendment id and the edits the line diff needs: `AddProduct` for a line the contract
  lacks (it co-terminates: from the effective date to the term end), `RemoveProduct` for a
  line the order drops or ends on the effective date, `AddSeats`/`RemoveSeats` for a
  quantity, `ChangePrice` for a unit price, `ChangeBillingFrequency` for the cycle.
  No edit at all: billing already is what the order says (None).
- What billing cannot express is an `OrderMismatchError` (`master_data_mismatch`) whose
  code names the term: a change under proration other than `invoice_now`
  (`proration_terms`: billing invoices a mid-term change at once, no other mode),
  another customer, currency, legal entity, start or end of term (`contract_terms`), a
  line's dates other than billing's (`line_dates`), another price id on a line
  (`line_price`), a ramp changed other than by seats moved on every step (`ramp_change`),
  a price change on a ramped line (`ramped_price_change`), an ended line revived
  (`line_ended`), auto-renewal switched (`auto_renew`), a downgrade where billing defers
  downgrades to renewal (`downgrade_at_renewal`), a cancellation that changes lines and
  keeps some running (`cancellation_lines`).
- A renewal is billing's own from its baseline (the port asks billing's pure core); the
  order may price its lines otherwise (`renewal_prices`: an uplift CPQ applied).
- A cancellation (`plan_cancellation`) is at term end when the order keeps the term's end
  and its lines unchanged; immediate when it keeps no line running after its effective
  date (each ended then, or at zero quantity as CPQ quotes a cancellation), with a refund
  of the unused time under `invoice_now`, without one under `none`. Billing's immediate
  cancellation ends the term and every line on the effective date; the order is compared
  with it as such (`as_cancelled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from finsync.domain.commercial import (
    CommercialKind,
    OrderLine,
    ProrationTerms,
    SubscriptionOrder,
)
from finsync.domain.contract import ContractLine, RampStep, SubscriptionContract
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.money import Money
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.edit import (
    AddProduct,
    AddSeats,
    ChangeBillingFrequency,
    ChangePrice,
    Edit,
    RemoveProduct,
    RemoveSeats,
)
from finsync.systems.billing.state import DowngradePolicy, Subscription
from finsync.systems.billing.subscription import CreateSubscription


class OrderMismatchError(PermanentError):
    """An order billing cannot apply as it stands; `code` names the term."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}",
                         exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
        self.code = code


def check_order(order: SubscriptionOrder) -> None:
    """What every order needs before billing is asked: an id (its idempotency key), a
    contract, each line once (a line id twice would lose one in the diff)."""
    if not order.id.strip() or not order.contract_id.strip():
        raise OrderMismatchError("invalid_order", "an order names its quote and contract")
    ids = [x.line_id for x in order.lines]
    twice = sorted({x for x in ids if ids.count(x) > 1})
    if twice:
        raise OrderMismatchError("invalid_order", f"order {order.id} has line "
                                 f"{', '.join(twice)} more than once")


def order_line(line: OrderLine) -> ContractLine:
    return ContractLine(line.line_id, line.product_id, line.price_id, line.quantity,
                        line.unit_price, line.start_date, line.end_date, line.ramp)


def ordered_contract(order: SubscriptionOrder, version: int = 1) -> SubscriptionContract:
    return SubscriptionContract(order.contract_id, order.customer_id, order.legal_entity,
                                order.currency, order.start_date, order.end_date,
                                order.billing_frequency,
                                tuple(order_line(x) for x in order.lines), version)


# -- the comparison -------------------------------------------------------------------------
def differences(order: SubscriptionOrder, contract: SubscriptionContract,
                since: date) -> tuple[str, ...]:
    """Every way `contract` differs from the order, from `since` on (empty: equal)."""
    found = [f"{name}: billing {ours}, order {theirs}"
             for name, ours, theirs in _terms(order, contract) if ours != theirs]
    ours_by_id = {x.line_id: x for x in contract.lines}
    theirs_by_id = {x.line_id: order_line(x) for x in order.lines}
    for line_id in dict.fromkeys([*ours_by_id, *theirs_by_id]):
        ours, theirs = ours_by_id.get(line_id), theirs_by_id.get(line_id)
        if not _in_force(ours, since) and not _in_force(theirs, since):
            continue
        if ours != theirs:
            found.append(f"line {line_id}: billing {_show(ours)}, order {_show(theirs)}")
    return tuple(found)


def _terms(order: SubscriptionOrder,
           contract: SubscriptionContract) -> list[tuple[str, object, object]]:
    return [("customer", contract.customer_id, order.customer_id),
            ("legal_entity", contract.legal_entity, order.legal_entity),
            ("currency", contract.currency, order.currency),
            ("start_date", contract.start_date, order.start_date),
            ("end_date", contract.end_date, order.end_date),
            ("billing_frequency", contract.billing_frequency.value,
             order.billing_frequency.value)]


def _in_force(line: ContractLine | None, since: date) -> bool:
    return line is not None and line.end_date > since


def _show(line: ContractLine | None) -> str:
    if line is None:
        return "none"
    ramp = "".join(f", from {s.starts_on} x{s.quantity} @ {s.unit_price}" for s in line.ramp)
    return (f"{line.price_id} x{line.quantity} @ {line.unit_price} "
            f"[{line.start_date}, {line.end_date}){ramp}")


# -- new ------------------------------------------------------------------------------------
def plan_new(order: SubscriptionOrder, catalog: Catalog) -> CreateSubscription:
    """Billing's subscription for a new order (unknown prices are billing's to refuse)."""
    usage = {catalog.plan(x.price_id).price.frequency for x in order.lines
             if catalog.plan(x.price_id).is_usage}
    if len(usage) > 1:
        raise OrderMismatchError("usage_frequency", f"order {order.id}: billing rates usage "
                                 "on one cycle; its usage prices have "
                                 f"{sorted(f.value for f in usage)}")
    arrears = next(iter(usage), None)
    return CreateSubscription(ordered_contract(order), order.id, order.auto_renew, arrears)


# -- amendment ------------------------------------------------------------------------------
def plan_amendment(order: SubscriptionOrder, sub: Subscription,
                   policy: DowngradePolicy) -> AmendSubscription | None:
    """The amendment that makes `sub`'s contract the order's, None when it already is."""
    contract = sub.contract
    _check_terms(order, contract, "billing_frequency")
    if order.auto_renew != sub.auto_renew:
        raise OrderMismatchError("auto_renew", f"order {order.id} sets auto-renewal "
                                 f"{order.auto_renew}; billing changes it only by a "
                                 "cancellation at term end")
    edits = line_edits(order, contract.lines)
    if order.billing_frequency != contract.billing_frequency:
        edits = (*edits, ChangeBillingFrequency(order.billing_frequency))
    if not edits:
        return None
    _check_proration(order)
    if policy is DowngradePolicy.AT_RENEWAL and _downgrades(edits, contract.lines):
        raise OrderMismatchError("downgrade_at_renewal", f"order {order.id} lowers the "
                                 "contract now; billing defers downgrades to renewal")
    return AmendSubscription(order.id, contract.id, order.effective_date, edits,
                             reason=order.kind.value)


def _check_terms(order: SubscriptionOrder, contract: SubscriptionContract,
                 *moving: str) -> None:
    wrong = [f"{name} (billing {ours}, order {theirs})"
             for name, ours, theirs in _terms(order, contract)
             if name not in moving and ours != theirs]
    if wrong:
        raise OrderMismatchError("contract_terms", f"order {order.id} changes what an "
                                 f"amendment cannot: {', '.join(wrong)}")


def _check_proration(order: SubscriptionOrder) -> None:
    if order.proration is not ProrationTerms.INVOICE_NOW:
        raise OrderMismatchError("proration_terms", f"order {order.id} asks for proration "
                                 f"{order.proration.value!r}; billing invoices a mid-term "
                                 "change at once (invoice_now) and has no other mode")


def line_edits(order: SubscriptionOrder,
               lines: Sequence[ContractLine]) -> tuple[Edit, ...]:
    """The line edits from `lines` to the order's, from its effective date."""
    day = order.effective_date
    ours_by_id = {x.line_id: x for x in lines}
    theirs_by_id = {x.line_id: x for x in order.lines}
    removed: list[Edit] = []
    changed: list[Edit] = []
    added: list[Edit] = []
    for line in lines:
        theirs = theirs_by_id.get(line.line_id)
        if not _in_force(line, day):
            if theirs is not None and theirs.end_date > day:
                raise OrderMismatchError("line_ended", f"line {line.line_id} ended on "
                                         f"{line.end_date}; the order keeps it to "
                                         f"{theirs.end_date}")
            continue
        if theirs is None or theirs.end_date == day:
            removed.append(RemoveProduct(line.line_id))
            continue
        changed.extend(_changes(line, theirs, day))
    for theirs in order.lines:
        if theirs.line_id not in ours_by_id and theirs.end_date > day:
            added.append(_added(theirs, order))
    return (*removed, *changed, *added)


def _changes(ours: ContractLine, theirs: OrderLine, day: date) -> list[Edit]:
    line_id = ours.line_id
    if (ours.product_id, ours.price_id) != (theirs.product_id, theirs.price_id):
        raise OrderMismatchError("line_price", f"line {line_id}: billing sells "
                                 f"{ours.price_id}, the order {theirs.price_id}; a new "
                                 "price is a new line")
    if (ours.start_date, ours.end_date) != (theirs.start_date, theirs.end_date):
        raise OrderMismatchError("line_dates", f"line {line_id}: billing runs "
                                 f"[{ours.start_date}, {ours.end_date}), the order "
                                 f"[{theirs.start_date}, {theirs.end_date}); an amendment "
                                 f"ends a line on its effective date {day} or keeps it")
    seats = theirs.quantity - ours.quantity
    ramped = bool(ours.ramp or theirs.ramp)
    if ramped and theirs.ramp != _moved(ours.ramp, seats):
        raise OrderMismatchError("ramp_change", f"line {line_id}: billing moves a ramp "
                                 "only by seats added or removed on every step")
    edits: list[Edit] = []
    if seats > 0:
        edits.append(AddSeats(line_id, seats))
    if seats < 0:
        edits.append(RemoveSeats(line_id, -seats))
    if theirs.unit_price != ours.unit_price:
        if ramped:
            raise OrderMismatchError("ramped_price_change", f"line {line_id} is ramped: "
                                     "billing prices it by its steps")
        edits.append(ChangePrice(line_id, theirs.unit_price))
    return edits


def renewal_prices(order: SubscriptionOrder,
                   renewed: SubscriptionContract) -> tuple[tuple[str, Money], ...]:
    """The unit prices the order renews lines at where billing's baseline has others (an
    uplift CPQ applied); a ramped order line is left to the comparison."""
    ours = {x.line_id: x.unit_price for x in renewed.lines}
    return tuple((x.line_id, x.unit_price) for x in order.lines
                 if x.line_id in ours and not x.ramp and x.unit_price != ours[x.line_id])


def _moved(ramp: tuple[RampStep, ...], seats: int) -> tuple[RampStep, ...]:
    return tuple(RampStep(s.starts_on, s.quantity + seats, s.unit_price) for s in ramp)


def _added(line: OrderLine, order: SubscriptionOrder) -> AddProduct:
    if (line.start_date, line.end_date) != (order.effective_date, order.end_date):
        raise OrderMismatchError("line_dates", f"line {line.line_id}: billing adds a line "
                                 f"from the effective date {order.effective_date} to the term "
                                 f"end {order.end_date}, the order has [{line.start_date}, "
                                 f"{line.end_date})")
    return AddProduct(line.line_id, line.price_id, line.quantity, line.unit_price, line.ramp)


def _downgrades(edits: Sequence[Edit], lines: Sequence[ContractLine]) -> bool:
    prices = {x.line_id: x.unit_price for x in lines}
    return any(isinstance(e, RemoveSeats | RemoveProduct)
               or (isinstance(e, ChangePrice) and e.unit_price < prices[e.line_id])
               for e in edits)


# -- cancellation ---------------------------------------------------------------------------
def plan_cancellation(order: SubscriptionOrder, sub: Subscription) -> CancelSubscription:
    contract, day = sub.contract, order.effective_date
    _check_terms(order, contract, "end_date")
    if order.end_date == contract.end_date and not _changes_lines(order, contract):
        return _cancel(order, CancelMode.AT_TERM_END)
    if order.end_date not in (day, contract.end_date):
        raise OrderMismatchError("contract_terms", f"order {order.id} ends the term on "
                                 f"{order.end_date}: billing cancels at its term end "
                                 f"{contract.end_date} or on the effective date {day}")
    running = _running(order)
    if running:
        raise OrderMismatchError("cancellation_lines", f"order {order.id} cancels on {day} "
                                 f"and keeps lines {', '.join(running)} running: billing "
                                 "cancels at term end with the lines unchanged, or "
                                 "immediately with none")
    if order.proration is ProrationTerms.NEXT_INVOICE:
        _check_proration(order)
    refund = order.proration is ProrationTerms.INVOICE_NOW
    return _cancel(order, CancelMode.IMMEDIATE_WITH_REFUND if refund
                   else CancelMode.IMMEDIATE_NO_REFUND)


def _running(order: SubscriptionOrder) -> list[str]:
    """Lines the order keeps running after its effective date (a line at zero, as a CPQ
    cancellation quotes it, is not running)."""
    return [x.line_id for x in order.lines
            if x.end_date > order.effective_date and x.quantity > 0]


def _changes_lines(order: SubscriptionOrder, contract: SubscriptionContract) -> bool:
    try:
        return bool(line_edits(order, contract.lines))
    except OrderMismatchError:
        return True


def as_cancelled(order: SubscriptionOrder, made: SubscriptionContract) -> SubscriptionOrder:
    """The order as billing's immediate cancellation states it: the term ends on the
    effective date and every line with it (lines at zero included); an order cancelled at
    term end, or one keeping lines running, is as it was (and compares as such)."""
    day = order.effective_date
    if order.kind is not CommercialKind.CANCELLATION or made.end_date != day or _running(order):
        return order
    return replace(order, end_date=day, lines=())


def _cancel(order: SubscriptionOrder, mode: CancelMode) -> CancelSubscription:
    return CancelSubscription(order.id, order.contract_id, order.effective_date, mode,
                              reason=order.kind.value)
