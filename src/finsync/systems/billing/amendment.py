"""Amendments: every commercial change makes contract version n+1.

Rules:
- An amendment takes effect on a date inside the current term, not before the contract
  starts, not before the cycle billed last (no backdating across a billed cycle) and not
  before the previous version's effective date; it must change something.
- Its diff (`ContractChange`, op a `ChangeOp`) is machine-readable; changes that only move
  the renewal baseline carry the `renewal_*` op (`ChangeOp.at_renewal`).
- Proration: for each in-advance line, the charge over what is already billed from the
  effective date, `[effective, billed through)`, is priced under the old and the new version
  (ramp pieces included); the difference, rounded once per line, is the line's delta.
- Upgrades (delta > 0) are invoiced at once, on the effective date, flagged as proration.
- Downgrades (delta < 0) follow the downgrade policy: `credit_now` issues a credit memo
  (reason downgrade) against the invoices that billed the line; `at_renewal` leaves the line
  as it is for this term and moves only the renewal baseline.
- The renewal baseline moves with every amendment.
- The invoice and credit memo carry the amendment id as correlation id and the new contract
  version as causation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractChange, ContractLine
from finsync.domain.contract import SubscriptionContract as Contract
from finsync.domain.events import ContractAmended
from finsync.systems.billing.advance import is_advance
from finsync.systems.billing.charge import exact_total, pieces, rounded
from finsync.systems.billing.credit import (
    CreditContext,
    CreditReason,
    LineCredit,
    credit_contract_lines,
)
from finsync.systems.billing.diff import contract_diff, lines_diff
from finsync.systems.billing.edit import (
    Edit,
    EditContext,
    apply_edits,
    check_contract,
    new_frequency,
)
from finsync.systems.billing.errors import (
    AmendmentDateError,
    ContractStateError,
    DuplicateIdError,
    InvalidCommandError,
)
from finsync.systems.billing.event import contract_ref, emit
from finsync.systems.billing.invoicing import DraftLine, IssueContext, issue_invoice
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import (
    BillingState,
    DowngradePolicy,
    Subscription,
    SubscriptionStatus,
    VersionInForce,
)


@dataclass(frozen=True, slots=True)
class AmendSubscription:
    id: str
    contract_id: str
    effective_date: date
    edits: tuple[Edit, ...]
    reason: str = "amendment"
    effective_at: datetime | None = None  # the instant, for by-second proration


@dataclass(frozen=True, slots=True)
class LineDelta:
    line_id: str
    before: ContractLine | None
    after: ContractLine | None
    amount: Decimal


def check_effective(sub: Subscription, change_id: str, effective: date) -> None:
    """The date rules every amendment and cancellation keeps."""
    contract = sub.contract
    if sub.status is SubscriptionStatus.CANCELLED:
        raise ContractStateError(f"{contract.id} is cancelled: it takes no amendment")
    if any(a.id == change_id for a in sub.amendments):
        raise DuplicateIdError(f"amendment {change_id} was already applied to {contract.id}")
    if effective < contract.start_date:
        raise AmendmentDateError(f"{change_id}: {effective} is before {contract.id} starts "
                                 f"on {contract.start_date}")
    if effective >= contract.end_date:
        raise AmendmentDateError(f"{change_id}: {effective} is not before the term end "
                                 f"{contract.end_date}")
    if sub.cycle is not None and effective < sub.cycle.period.start:
        raise AmendmentDateError(f"{change_id}: {effective} is before the billed cycle "
                                 f"starting {sub.cycle.period.start}")
    if effective < sub.history[-1].effective_date:
        raise AmendmentDateError(f"{change_id}: {effective} is before version "
                                 f"{contract.version} took effect")


def amend_subscription(state: BillingState, cmd: AmendSubscription) -> Outcome:
    sub = state.subscription(cmd.contract_id)
    check_effective(sub, cmd.id, cmd.effective_date)
    if not cmd.edits:
        raise InvalidCommandError(f"amendment {cmd.id} has no edits")
    old = sub.contract
    ctx = EditContext(cmd.effective_date, old.end_date, old.currency, state.config.catalog)
    edited = apply_edits(old.lines, cmd.edits, ctx)
    baseline = apply_edits(sub.renewal_lines, cmd.edits, ctx, lenient=True)
    span = prorated_span(sub, cmd.effective_date)
    deltas = line_deltas(state, sub, old.lines, edited, span, cmd.effective_at)
    deferring = state.config.downgrade_policy is DowngradePolicy.AT_RENEWAL
    deferred = {d.line_id for d in deltas if d.amount < 0} if deferring else set()
    new = replace(old, lines=_merge(old.lines, edited, deferred), version=old.version + 1,
                  billing_frequency=new_frequency(cmd.edits, old.billing_frequency))
    check_contract(new, state.config.catalog)
    amendment = ContractAmendment(cmd.id, old.id, new.version, cmd.effective_date, cmd.reason,
                                  _changes(sub, new, baseline), new)
    if not amendment.changes:
        raise InvalidCommandError(f"amendment {cmd.id} changes nothing")
    amended = replace(sub, contract=new, correlation_id=cmd.id, renewal_lines=baseline,
                      history=(*sub.history, VersionInForce(cmd.effective_date, new)),
                      amendments=(*sub.amendments, amendment))
    emitted = emit(ContractAmended(amendment), cmd.id, contract_ref(old))
    outcome = Outcome(state.with_subscription(amended), (emitted,))
    kept = tuple(d for d in deltas if d.line_id not in deferred)
    return outcome.then(_settle(outcome.state, new, kept, span, cmd))


def prorated_span(sub: Subscription, effective: date) -> Period | None:
    """What is already billed in advance from `effective` on, if anything."""
    if sub.cycle is None or effective >= sub.billed_through:
        return None
    return Period(effective, sub.billed_through)


def line_deltas(state: BillingState, sub: Subscription, before: tuple[ContractLine, ...],
                after: tuple[ContractLine, ...], span: Period | None,
                starts_at: datetime | None) -> tuple[LineDelta, ...]:
    if span is None or sub.cycle is None:
        return ()
    old, new = {x.line_id: x for x in before}, {x.line_id: x for x in after}
    deltas = []
    for line_id in dict.fromkeys([*old, *new]):
        amounts = [_charge(state, sub, lines.get(line_id), span, starts_at)
                   for lines in (old, new)]
        if amounts[0] != amounts[1]:
            deltas.append(LineDelta(line_id, old.get(line_id), new.get(line_id),
                                    amounts[1] - amounts[0]))
    return tuple(deltas)


def _charge(state: BillingState, sub: Subscription, line: ContractLine | None, span: Period,
            starts_at: datetime | None) -> Decimal:
    if line is None or sub.cycle is None or not is_advance(state, line):
        return Decimal(0)
    plan = state.config.catalog.plan(line.price_id)
    rule = state.config.proration.of(sub.contract, sub.anchor)
    return exact_total(pieces(line, plan, span, sub.cycle, rule, starts_at))


def _merge(before: tuple[ContractLine, ...], after: tuple[ContractLine, ...],
           deferred: set[str]) -> tuple[ContractLine, ...]:
    """The edited lines, except deferred ones, which stay as they were this term."""
    old = {line.line_id: line for line in before}
    kept = [old.get(x.line_id, x) if x.line_id in deferred else x for x in after]
    ids = {x.line_id for x in after}
    return tuple(kept) + tuple(x for x in before if x.line_id in deferred - ids)


def _changes(sub: Subscription, new: Contract,
             baseline: tuple[ContractLine, ...]) -> tuple[ContractChange, ...]:
    now = contract_diff(sub.contract, new)
    line_changes = lines_diff(sub.contract.lines, new.lines)
    later = tuple(replace(c, op=c.op.at_renewal())
                  for c in lines_diff(sub.renewal_lines, baseline) if c not in line_changes)
    return now + later


def _settle(state: BillingState, contract: Contract, deltas: tuple[LineDelta, ...],
            span: Period | None, cmd: AmendSubscription) -> Outcome:
    """Invoice the upgrades now; credit the downgrades now (when not deferred)."""
    if span is None:
        return Outcome(state)
    ups = tuple(_upgrade_draft(state, d, span, contract.currency) for d in deltas
                if d.amount > 0)
    issue = IssueContext(contract, cmd.effective_date, cmd.id, contract_ref(contract))
    outcome = issue_invoice(state, ups, issue)
    downs = tuple(LineCredit(d.line_id, rounded(-d.amount, contract.currency), _quantity(d),
                             span, f"Downgrade: {_what(d)}")
                  for d in deltas if d.amount < 0)
    credit = CreditContext(CreditReason.DOWNGRADE, cmd.effective_date, cmd.id,
                           contract_ref(contract))
    return outcome.then(credit_contract_lines(outcome.state, contract.id, downs, credit))


def _upgrade_draft(state: BillingState, delta: LineDelta, span: Period,
                   currency: str) -> DraftLine:
    line = delta.after or delta.before
    assert line is not None
    name = state.config.catalog.product(line.product_id).name
    return DraftLine(line.line_id, line.product_id, f"Proration: {name} {_what(delta)}",
                     _quantity(delta), rounded(delta.amount, currency), span, True)


def _quantity(delta: LineDelta) -> int:
    before = delta.before.quantity if delta.before else 0
    after = delta.after.quantity if delta.after else 0
    return abs(after - before) or after


def _what(delta: LineDelta) -> str:
    return f"{_terms(delta.before)} -> {_terms(delta.after)}"


def _terms(line: ContractLine | None) -> str:
    if line is None:
        return "none"
    return f"x{line.quantity} @ {line.unit_price} until {line.end_date.isoformat()}"
