"""Period-end revenue journals per legal entity, period and currency.

Rules:
- Billings reach the GL from billing through the ledger as Dr receivable / Cr deferred
  revenue (credit memos the reverse); the revenue engine posts the rest, so that at every
  period end the GL holds the engine's balances.
- For each contract, over the period `[start, end)` (movements = closing - opening):
  Cr revenue (revenue recognised), Dr deferred revenue (billed - change in deferred
  revenue), Dr contract asset (its change), Dr unbilled receivable (its change). A negative
  movement goes on the other side. The identity in `balance` makes every entry balance by
  construction; `JournalEntry` checks it again.
- One entry per legal entity, period and currency (a contract's movements are in its own
  currency, and an entity may bill in several: amounts of two currencies are never added),
  one line per contract and account (dimension `revenue_contract`), zero lines left out; no
  entry for a currency in which nothing moved. Entries come in currency order.
- The entry id is derived from (entity, period, currency), so re-running a close yields the
  same ids whatever else moved; its source references are the schedule references
  (`schedule_id@vN`) it was built from.
- Concessions (`contra`): revenue is credited gross (recognised + contra revenue) and the
  contra revenue debited to its own account, so net = gross - contra is unchanged and both
  can be reported. Consideration billed beyond the price in force is a refund liability
  (606-10-32-10), credited to its own account out of deferred revenue.
- Adjustment lines (`ContractMovement.adjusts`) carry the closed period they catch up and
  the events that changed it (dimensions `adjusts_period`, `revenue_change`).
  `revenue_change` is the event ids space-joined while they fit the hub's id limit
  (`ID_MAX_CHARS`); beyond it, the ids that fit, in order, then `+N more` for the N left
  out (`changes_named`), so a close with many late changes still posts. The full list is
  the contract's change log (engine.md, "Immutable period journals").
- Account codes come in a small mapping with the keys `revenue`, `deferred_revenue`,
  `contract_asset` and `unbilled_receivable`, and optionally `contra_revenue` and
  `refund_liability`: without them, concessions stay net on the revenue account and a
  refund liability in deferred revenue (the books before those accounts existed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from finsync.domain.clock import Period
from finsync.domain.ids import derive_id
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.limits import ID_MAX_CHARS
from finsync.domain.money import Money
from finsync.systems.revrec.balance import ContractBalances, balances
from finsync.systems.revrec.contra import contra_to, refund_liability
from finsync.systems.revrec.errors import AccountMappingError, ContractMismatchError
from finsync.systems.revrec.schedule import schedule_id_for
from finsync.systems.revrec.state import RevenueContractState

ACCOUNT_KEYS = ("revenue", "deferred_revenue", "contract_asset", "unbilled_receivable")
OPTIONAL_ACCOUNT_KEYS = ("contra_revenue", "refund_liability")


@dataclass(frozen=True, slots=True)
class AccountMap:
    revenue: str
    deferred_revenue: str
    contract_asset: str
    unbilled_receivable: str
    contra_revenue: str | None = None
    refund_liability: str | None = None

    @classmethod
    def of(cls, codes: Mapping[str, str]) -> AccountMap:
        missing = [k for k in ACCOUNT_KEYS if not codes.get(k)]
        if missing:
            raise AccountMappingError(f"account codes missing for {missing}")
        unknown = sorted(set(codes) - {*ACCOUNT_KEYS, *OPTIONAL_ACCOUNT_KEYS})
        if unknown:
            raise AccountMappingError(f"unknown account roles {unknown}: the roles are "
                                      f"{[*ACCOUNT_KEYS, *OPTIONAL_ACCOUNT_KEYS]}")
        return cls(*(codes[k] for k in ACCOUNT_KEYS),
                   *(codes.get(k) or None for k in OPTIONAL_ACCOUNT_KEYS))

    def as_dict(self) -> dict[str, str]:
        found = {k: getattr(self, k) for k in (*ACCOUNT_KEYS, *OPTIONAL_ACCOUNT_KEYS)}
        return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Movement:
    """Debits positive; revenue is a credit, so it is kept as recognised (positive = Cr),
    net of concessions; `contra` is the contra revenue of the period (positive = Dr) and
    `refund_liability` its change (positive = Cr), None when nothing moved there."""

    revenue: Money
    deferred_revenue: Money
    contract_asset: Money
    unbilled_receivable: Money
    contra: Money | None = None
    refund_liability: Money | None = None


@dataclass(frozen=True, slots=True)
class ContractMovement:
    """One contract's movement over a period and its schedule references (`schedule_id@vN`),
    whether computed from its state or read from position rows."""

    revenue_contract_id: str
    movement: Movement
    references: tuple[str, ...]
    adjusts: str | None = None  # the closed period (YYYY-MM) an adjustment catches up
    changes: tuple[str, ...] = ()  # the events behind an adjustment


def movement(state: RevenueContractState, period: Period) -> Movement:
    opening, closing = balances(state, period.start), balances(state, period.end)
    found = movement_between(opening, closing)
    contra = contra_to(state, period.end) - contra_to(state, period.start)
    owed = (refund_liability(state, period.end, closing)
            - refund_liability(state, period.start, opening))
    return replace(found, contra=None if contra.is_zero else contra,
                   refund_liability=None if owed.is_zero else owed)


def movement_between(opening: ContractBalances, closing: ContractBalances) -> Movement:
    return Movement(
        closing.recognised - opening.recognised,
        (closing.billed - opening.billed) - (closing.deferred_revenue - opening.deferred_revenue),
        closing.contract_asset - opening.contract_asset,
        closing.unbilled_receivable - opening.unbilled_receivable,
    )


def _line(account: str, debit: Money, dimensions: tuple[tuple[str, str], ...]) -> JournalLine:
    side = Side.DEBIT if debit.amount > 0 else Side.CREDIT
    amount = debit if debit.amount > 0 else -debit
    return JournalLine(account, side, amount, dimensions)


def _contract_lines(held: ContractMovement, accounts: AccountMap) -> list[JournalLine]:
    move = held.movement
    zero = Money.zero(move.revenue.currency)
    contra = move.contra or zero if accounts.contra_revenue else zero
    owed = move.refund_liability or zero if accounts.refund_liability else zero
    debits = [(accounts.revenue, -(move.revenue + contra)),
              (accounts.contra_revenue or accounts.revenue, contra),
              (accounts.deferred_revenue, move.deferred_revenue + owed),
              (accounts.refund_liability or accounts.deferred_revenue, -owed),
              (accounts.contract_asset, move.contract_asset),
              (accounts.unbilled_receivable, move.unbilled_receivable)]
    dimensions: tuple[tuple[str, str], ...] = (("revenue_contract", held.revenue_contract_id),)
    if held.adjusts is not None:
        dimensions += (("adjusts_period", held.adjusts),
                       ("revenue_change", changes_named(held.changes)))
    return [_line(account, amount, dimensions)
            for account, amount in debits if not amount.is_zero]


def changes_named(changes: Sequence[str], chars_max: int = ID_MAX_CHARS) -> str:
    """The `revenue_change` value: the ids space-joined when that fits `chars_max` (as
    always); else the longest leading run of ids that fits with the marker `+N more`, N the
    ids left out (`+N more` alone when not even the first fits). A function of the ids only,
    so a re-computed journal is the same, byte for byte."""
    joined = " ".join(changes)
    if len(joined) <= chars_max:
        return joined
    shown: list[str] = []
    used = 0  # characters of the ids shown so far, with a space after each
    for event_id in changes:
        marker = f"+{len(changes) - len(shown) - 1} more"
        if used + len(event_id) + 1 + len(marker) > chars_max:
            break
        shown.append(event_id)
        used += len(event_id) + 1
    return " ".join([*shown, f"+{len(changes) - len(shown)} more"])


def contract_movement(state: RevenueContractState, period: Period) -> ContractMovement:
    refs = tuple(f"{schedule_id_for(state.revenue_contract_id, ob.obligation_id)}"
                 f"@v{ob.version}" for ob in state.obligations)
    return ContractMovement(state.revenue_contract_id, movement(state, period), refs)


def period_journals(states: Sequence[RevenueContractState], legal_entity: str,
                    period: Period, accounts: Mapping[str, str] | AccountMap
                    ) -> tuple[JournalEntry, ...]:
    """The period's revenue journals for one legal entity, one per currency that moved."""
    for state in states:
        if state.legal_entity != legal_entity:
            raise ContractMismatchError(f"{state.revenue_contract_id} belongs to "
                                        f"{state.legal_entity}, not {legal_entity}")
    return journal_of([contract_movement(state, period) for state in states], legal_entity,
                      period, accounts)


def period_journal(states: Sequence[RevenueContractState], legal_entity: str, period: Period,
                   accounts: Mapping[str, str] | AccountMap) -> JournalEntry | None:
    """The period's revenue journal of contracts in one currency, or None if nothing moved
    (contracts in several currencies: `period_journals`)."""
    currencies = sorted({state.currency for state in states})
    if len(currencies) > 1:
        raise ContractMismatchError(f"contracts in {', '.join(currencies)} make one journal "
                                    "per currency: ask for period_journals")
    found = period_journals(states, legal_entity, period, accounts)
    return found[0] if found else None


def journal_of(contracts: Sequence[ContractMovement], legal_entity: str, period: Period,
               accounts: Mapping[str, str] | AccountMap) -> tuple[JournalEntry, ...]:
    """The journals from each contract's movement (given in revenue contract id order),
    one per currency, in currency order."""
    codes = accounts if isinstance(accounts, AccountMap) else AccountMap.of(accounts)
    by_currency: dict[str, list[ContractMovement]] = {}
    for held in contracts:
        by_currency.setdefault(held.movement.revenue.currency, []).append(held)
    found = (_journal(by_currency[currency], legal_entity, period, currency, codes)
             for currency in sorted(by_currency))
    return tuple(entry for entry in found if entry is not None)


def journal_id(legal_entity: str, period: Period, currency: str) -> str:
    return derive_id("je", "revrec", legal_entity, period.start.isoformat(),
                     period.end.isoformat(), currency)


def _journal(contracts: Sequence[ContractMovement], legal_entity: str, period: Period,
             currency: str, codes: AccountMap) -> JournalEntry | None:
    lines: list[JournalLine] = []
    refs: list[tuple[str, str]] = []
    for held in contracts:
        lines += _contract_lines(held, codes)
        refs += [("revenue_schedule", ref) for ref in held.references]
    if not lines:
        return None
    return JournalEntry(journal_id(legal_entity, period, currency), legal_entity,
                        period.end - timedelta(days=1),
                        f"Revenue recognition {legal_entity} {period.start}..{period.end} "
                        f"{currency}", tuple(lines), source_refs=tuple(refs))
