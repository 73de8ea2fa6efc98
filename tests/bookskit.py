"""The books a run leaves in a database, in a form two runs compare by `==`: what the
cluster kill tests hold against the same stream run in one process.

Rules:
- Nothing here names a row by an id one run made up: ledger entries are keyed by the
  document they post (kind, id) and compared with their dates and lines; events by their
  source event id.
- A count that must be one (a document posted once, a source event accepted once, a raw
  event stored once) is checked as a list of offenders, empty when all is well, so a
  failure names them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select

from finsync.bootstrap import build_finance, build_ledger_service
from finsync.config import FinsyncConfig
from finsync.hub.milestone import Milestone
from finsync.storage.schema import aggregate_cursors, events, milestones, raw_events
from finsync.systems.ledger import tables as ledger

AS_OF = date(2026, 12, 31)  # lifecycle_stream's business is all in 2026


@dataclass(frozen=True)
class Books:
    entries: dict[tuple[str, str], list[Any]]  # (document kind, id) -> its entries
    trial_balances: dict[str, list[tuple[str, str]]]  # entity -> (account, balance)
    by_currency: dict[tuple[str, str, str, str], int]  # entity, account, currency, side
    events: dict[str, int]  # accepted events per type
    recon: dict[tuple[str, str, str], str]  # (check, entity, currency) -> variance
    unexplained: list[str]  # reconciliation breaks nothing explains

    def comparable(self) -> dict[str, Any]:
        return {"entries": self.entries, "trial_balances": self.trial_balances,
                "by_currency": self.by_currency, "events": self.events, "recon": self.recon}


def books(config: FinsyncConfig, engine: Engine) -> Books:
    """The ledger's entries and balances, the accepted events and a reconciliation as of
    `AS_OF` (recorded like any run)."""
    finance = build_finance(config, engine=engine)
    report = finance.recon.run(AS_OF)
    ledger_service = build_ledger_service(config, engine)
    return Books(
        _entries(engine),
        {entity: [(row.account, str(row.balance.amount))
                  for row in ledger_service.trial_balance(entity, AS_OF)]
         for entity, _ in ledger_service.entities()},
        _by_currency(engine),
        _accepted(engine),
        {(c.name, c.legal_entity, c.currency): str(c.variance.amount) for c in report.checks},
        [f"{check.name} {check.legal_entity}: {item.as_dict()}"
         for check, item in report.unexplained])


def _entries(engine: Engine) -> dict[tuple[str, str], list[Any]]:
    per_document: dict[tuple[str, str], list[Any]] = defaultdict(list)
    lines_of: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    with engine.connect() as conn:
        for line in conn.execute(select(ledger.lines).order_by(ledger.lines.c.entry_id,
                                                               ledger.lines.c.line_no)):
            lines_of[line.entry_id].append((line.account, line.side, line.amount_minor,
                                            line.currency, line.txn_amount_minor,
                                            line.txn_currency, line.customer))
        for entry in conn.execute(select(ledger.entries)):
            per_document[(entry.document_kind, entry.document_id or "")].append(
                (entry.entity, entry.posting_date.isoformat(), entry.reverses is not None,
                 lines_of[entry.id]))
    return {key: sorted(value) for key, value in sorted(per_document.items())}


def _by_currency(engine: Engine) -> dict[tuple[str, str, str, str], int]:
    currency = func.coalesce(ledger.lines.c.txn_currency, ledger.lines.c.currency)
    amount = func.coalesce(ledger.lines.c.txn_amount_minor, ledger.lines.c.amount_minor)
    query = (select(ledger.lines.c.entity, ledger.lines.c.account, currency,
                    ledger.lines.c.side, func.sum(amount))
             .group_by(ledger.lines.c.entity, ledger.lines.c.account, currency,
                       ledger.lines.c.side))
    with engine.connect() as conn:
        return {(e, a, c, s): int(n) for e, a, c, s, n in conn.execute(query)}


def _accepted(engine: Engine) -> dict[str, int]:
    query = (select(events.c.type, func.count()).where(events.c.status == "accepted")
             .group_by(events.c.type))
    with engine.connect() as conn:
        return {t: int(n) for t, n in conn.execute(query)}


# -- once, and in order -------------------------------------------------------------------------


def documents_posted_twice(found: Books) -> list[tuple[str, str]]:
    """Documents with more than one entry (the stream has no reversals)."""
    return [key for key, entries in found.entries.items() if len(entries) != 1]


def events_accepted_twice(engine: Engine) -> list[tuple[str, str]]:
    query = (select(events.c.source, events.c.source_event_id)
             .group_by(events.c.source, events.c.source_event_id)
             .having(func.count() > 1))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


@dataclass(frozen=True)
class RawLog:
    rows: int
    transport_ids: int  # distinct, not null
    stored_twice: list[tuple[str, str]]  # (source, source event id) in more than one row


def raw_log(engine: Engine) -> RawLog:
    """The raw events a transport stored: one per source event (its transport id)."""
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(raw_events)).scalar_one()
        ids = conn.execute(select(func.count(raw_events.c.transport_id.distinct()))).scalar_one()
        ids_seen = Counter(tid for (tid,) in conn.execute(select(raw_events.c.transport_id)))
    return RawLog(int(rows), int(ids), sorted(
        tuple(str(t).split("/", 1)) for t, n in ids_seen.items()  # type: ignore[misc]
        if t is not None and n > 1))


def applied_versions(engine: Engine) -> dict[tuple[str, str], list[int]]:
    """Per contract, the versions in the order the hub accepted them: the contract-accepted
    milestone is written in the transaction that applies the version (and its serial id
    is drawn there, after the previous version's transaction committed)."""
    query = (select(events.c.aggregate_type, events.c.aggregate_id, events.c.aggregate_version)
             .join(milestones, milestones.c.event_id == events.c.event_id)
             .where(milestones.c.name == Milestone.CONTRACT_ACCEPTED.value)
             .order_by(milestones.c.id))
    applied: dict[tuple[str, str], list[int]] = defaultdict(list)
    with engine.connect() as conn:
        for kind, aggregate, version in conn.execute(query):
            applied[(kind, aggregate)].append(version)
    return dict(applied)


def cursors(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        return {(k, a): int(v) for k, a, v in conn.execute(select(aggregate_cursors))}


def out_of_order(applied: dict[tuple[str, str], list[int]]) -> dict[tuple[str, str], list[int]]:
    """Aggregates whose versions were not applied 1, 2, 3 … each once."""
    return {key: versions for key, versions in applied.items()
            if versions != list(range(1, len(versions) + 1))}
