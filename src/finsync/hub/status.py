"""What the hub reports of itself: status, unresolved exceptions and their money at stake,
what waits, and the listing filters (the read model of `Hub.status_report` and
`Hub.exception_listing`).

Rules:
- Status is honest: every exception that is not resolved (open, retrying, awaiting approval)
  is counted with its money at stake per currency; no caller picks one status to show.
- A filter value that names no status or class is refused with the allowed values; it never
  means "nothing matches".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finsync.domain.errors import DomainError, ExceptionClass
from finsync.domain.money import Money
from finsync.domain.status import UNRESOLVED, ExceptionStatus


class UnknownFilterError(DomainError):
    """A filter value that names no exception status or class; the message lists the
    allowed values (`unknown_status`, `unknown_exception_class`)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# What `status=` of an exception listing accepts besides one ExceptionStatus.
UNRESOLVED_FILTER = "unresolved"
ALL_FILTER = "all"
STATUS_FILTERS = (UNRESOLVED_FILTER, *(s.value for s in ExceptionStatus), ALL_FILTER)
LISTING_MAX = 500  # rows of one listing; its count and money at stake cover every match


def parse_status_filter(status: str | None) -> tuple[ExceptionStatus, ...]:
    """The statuses a filter value selects: one status, `unresolved` (open, retrying,
    awaiting approval) or `all` (None too)."""
    if status is None or status == ALL_FILTER:
        return tuple(ExceptionStatus)
    if status == UNRESOLVED_FILTER:
        return UNRESOLVED
    if status in set(ExceptionStatus):
        return (ExceptionStatus(status),)
    raise UnknownFilterError(f"unknown exception status {status!r}; allowed: "
                             f"{', '.join(STATUS_FILTERS)}", code="unknown_status")


def parse_class_filter(name: str | None) -> ExceptionClass | None:
    """The class a filter value names (None: every class)."""
    if name is None:
        return None
    if name in set(ExceptionClass):
        return ExceptionClass(name)
    raise UnknownFilterError(f"unknown exception class {name!r}; allowed: "
                             f"{', '.join(c.value for c in ExceptionClass)}",
                             code="unknown_exception_class")


@dataclass(frozen=True, slots=True)
class AtStake:
    """The exceptions of one status and class: how many, and their money at stake per
    currency (an exception without an amount is counted and adds nothing)."""

    status: ExceptionStatus
    exception_class: str
    count: int
    amounts: Mapping[str, Money] = field(default_factory=dict)


def at_stake_total(groups: Collection[AtStake]) -> dict[str, Money]:
    """Money at stake per currency over `groups`."""
    total: dict[str, Money] = {}
    for group in groups:
        for currency, amount in group.amounts.items():
            total[currency] = total.get(currency, Money.zero(currency)) + amount
    return dict(sorted(total.items()))


def _money_json(amounts: Mapping[str, Money]) -> dict[str, str]:
    return {currency: str(m.amount) for currency, m in sorted(amounts.items())}


def _totals_json(groups: Sequence[AtStake], key: Callable[[AtStake], str]
                 ) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for name in sorted({key(g) for g in groups}):
        chosen = [g for g in groups if key(g) == name]
        result[name] = {"count": sum(g.count for g in chosen),
                        "at_stake": _money_json(at_stake_total(chosen))}
    return result


@dataclass(frozen=True, slots=True)
class Waiting:
    """Deliveries not settled yet: `retrying` wait for a later attempt (the first at
    `next_retry_at`); `due` are due now but not delivered (no run since, an earlier delivery
    of their aggregate that failed, or a target's call budget); `in_flight` are leased."""

    retrying: int = 0
    next_retry_at: datetime | None = None
    due: int = 0
    in_flight: int = 0

    @property
    def nothing(self) -> bool:
        return not (self.retrying or self.due or self.in_flight)

    def as_json(self) -> dict[str, Any]:
        return {"retrying": self.retrying, "next_retry_at": iso(self.next_retry_at),
                "due": self.due, "in_flight": self.in_flight}


@dataclass(frozen=True, slots=True)
class BudgetWait:
    """An ERP's calls held back now by its posting budget: `limit` is the minute's budget
    (`calls_per_minute`), the day's cap (`daily_cap`, until the next UTC day) or the ERP's
    own pause (`retry_after`); one call may go in `seconds`. Its due deliveries wait,
    untried, among `Waiting.due`."""

    target: str
    limit: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "limit": self.limit,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class HeldForTax:
    """Invoices billing holds as drafts because their tax could not be computed: how many
    (one unresolved `tax_failure` each) and their subtotals per currency, the money they
    hold back. Already counted among the unresolved exceptions; shown apart because no
    invoice of theirs is posted yet."""

    count: int = 0
    amounts: Mapping[str, Money] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "at_stake": _money_json(self.amounts),
                "exception_class": ExceptionClass.TAX_FAILURE.value}


def held_for_tax(rows: Iterable[tuple[str | None, int, int | None]]) -> HeldForTax:
    """`(currency, count, minor units)` rows as one `HeldForTax`."""
    count = 0
    amounts: dict[str, Money] = {}
    for currency, n, minor in rows:
        count += n
        if currency is not None and minor is not None:
            amounts[currency] = Money.from_minor(minor, currency)
    return HeldForTax(count, dict(sorted(amounts.items())))


@dataclass(frozen=True, slots=True)
class HubStatus:
    """Counts of every record, the unresolved exceptions with their money at stake, and
    what is still waiting to be delivered."""

    raw_events: Mapping[str, int]
    events: Mapping[str, int]
    deliveries: Mapping[str, int]
    duplicates_ignored: int
    exceptions: Mapping[str, Mapping[str, int]]  # status -> class -> count, every status
    unresolved: tuple[AtStake, ...]  # one per (status, class) not resolved
    waiting: Waiting
    # Usage at volume: meter events stored, those not yet totalled (`events_waiting`), and
    # the totals by hand-over status (`totals_pending` still wait for billing).
    usage: Mapping[str, int] = field(default_factory=dict)
    # Dunning: commercial threads whose last payment attempt was declined (`threads`), and
    # every declined attempt received (`declined_attempts`).
    dunning: Mapping[str, int] = field(default_factory=dict)
    held_for_tax: HeldForTax = field(default_factory=HeldForTax)
    budget_waits: tuple[BudgetWait, ...] = ()

    @property
    def unresolved_count(self) -> int:
        return sum(g.count for g in self.unresolved)

    @property
    def at_stake(self) -> dict[str, Money]:
        return at_stake_total(self.unresolved)

    def as_json(self) -> dict[str, Any]:
        unresolved = {
            "count": self.unresolved_count,
            "at_stake": _money_json(self.at_stake),
            "by_status": _totals_json(self.unresolved, lambda g: g.status.value),
            "by_class": _totals_json(self.unresolved, lambda g: g.exception_class),
            "items": [{"status": g.status.value, "class": g.exception_class,
                       "count": g.count, "at_stake": _money_json(g.amounts)}
                      for g in self.unresolved],
        }
        return {"raw_events": dict(self.raw_events), "events": dict(self.events),
                "deliveries": dict(self.deliveries),
                "duplicates_ignored": self.duplicates_ignored,
                "exceptions": {k: dict(v) for k, v in self.exceptions.items()},
                "unresolved_exceptions": unresolved,
                "waiting": self.waiting.as_json(),
                "next_retry_at": iso(self.waiting.next_retry_at),
                "usage": dict(self.usage),
                "dunning": dict(self.dunning),
                "held_for_tax": self.held_for_tax.as_json(),
                "budget_waits": [w.as_json() for w in self.budget_waits]}


@dataclass(frozen=True, slots=True)
class ExceptionListing:
    """Exceptions chosen by status and class, oldest first (at most `LISTING_MAX` rows);
    `count` and `at_stake` (unresolved ones only, per currency) cover every match."""

    rows: list[dict[str, Any]]
    count: int
    at_stake: Mapping[str, Money]

    def as_json(self) -> dict[str, Any]:
        return {"exceptions": self.rows, "count": self.count,
                "at_stake": _money_json(self.at_stake)}


def at_stake_groups(rows: Iterable[tuple[str, str, str | None, int, int | None]]
                    ) -> tuple[AtStake, ...]:
    """`(status, class, currency, count, minor units)` rows as groups per status and class,
    their money summed per currency; statuses in their order, then classes by name."""
    counts: Counter[tuple[ExceptionStatus, str]] = Counter()
    amounts: dict[tuple[ExceptionStatus, str], dict[str, Money]] = {}
    for status, name, currency, n, minor in rows:
        key = (ExceptionStatus(status), name)
        counts[key] += n
        if currency is not None and minor is not None:
            amounts.setdefault(key, {})[currency] = Money.from_minor(minor, currency)
    order = list(ExceptionStatus)
    keys = sorted(counts, key=lambda k: (order.index(k[0]), k[1]))
    return tuple(AtStake(s, k, counts[(s, k)], amounts.get((s, k), {})) for s, k in keys)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
