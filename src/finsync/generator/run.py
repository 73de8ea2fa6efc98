"""Generate a company into the configured database and say what it made.

Rules:
- The database must hold no business yet (billing's outbox is empty): a second company on
  top of a first would mix two plans' ids.
- The horizon starts on 1 January of the first fiscal year every legal entity has open,
  and must end within the fiscal years they have (the ERP refuses postings elsewhere).
- Billing's outbox is not pumped by the hub here: the driver hands it over itself, so the
  configured `[pumps]` are left out.
- Its commits are not each waited on to reach the disk (`bulk_engine`: SQLite
  `synchronous=NORMAL` in WAL mode, PostgreSQL `synchronous_commit=off`): both databases stay
  consistent, and a power cut during a run costs at most its last commits, while a company
  is made again from its seed anyway. Everything else `finsync` runs keeps full durability.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from finsync.bootstrap import build_billing_service, build_engine, build_finance
from finsync.config import ConfigError, FinsyncConfig
from finsync.demo.clock import SimClock
from finsync.domain.errors import FinsyncError
from finsync.generator.driver import Driver, Progress, Tally
from finsync.generator.plan import CompanyPlan, plan_company
from finsync.systems.billing.cycle import add_months

CUSTOMERS_MAX = 1_000_000
# Billing's event types, as the summary names them.
_COUNTED = {"ContractCreated": "subscriptions", "ContractAmended": "amendments",
            "ContractRenewed": "renewals", "ContractCancelled": "cancellations",
            "InvoiceIssued": "invoices", "CreditMemoIssued": "credit_memos",
            "PaymentApplied": "payments", "RefundIssued": "refunds",
            "UsageRecorded": "usage_records", "UsageRated": "usage_ratings"}


class DatabaseNotEmptyError(FinsyncError):
    code = "database_not_empty"


@dataclass(frozen=True, slots=True)
class Request:
    customers: int
    months: int
    seed: int = 1


def horizon(config: FinsyncConfig, months: int) -> date:
    """The first day of the horizon; refuses one that leaves the entities' fiscal years."""
    years = [set(e.fiscal_years) for e in config.ledger.entities]
    common = set.intersection(*years) if years else set()
    if not common:
        raise ConfigError("the legal entities in [ledger] share no fiscal year")
    start = date(min(common), 1, 1)
    last = add_months(start, months - 1)
    missing = sorted({add_months(start, k).year for k in range(months)} - common)
    if missing:
        raise ConfigError(f"{months} months from {start} end in {last:%Y-%m}: fiscal year(s) "
                          f"{missing} are not open for every entity in [ledger]")
    return start


def bulk_engine(config: FinsyncConfig) -> Engine:
    """The configured database, each commit not waited on to reach the disk (see Rules)."""
    engine = build_engine(config)
    sqlite = engine.dialect.name == "sqlite"

    @event.listens_for(engine, "connect")
    def _relaxed(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL" if sqlite
                       else "SET synchronous_commit TO off")
        cursor.close()
        if not sqlite:
            dbapi_conn.commit()  # the SET holds for the session once committed

    return engine


def generate(config: FinsyncConfig, request: Request,
             progress: Progress | None = None) -> dict[str, Any]:
    if not 1 <= request.customers <= CUSTOMERS_MAX or request.months < 1:
        raise ConfigError(f"customers must be 1..{CUSTOMERS_MAX} and months at least 1")
    start = horizon(config, request.months)
    entities = [(e.id, e.functional_currency) for e in config.ledger.entities]
    try:
        plan = plan_company(request.seed, request.customers, request.months, start, entities)
    except ValueError as exc:  # the entities cannot hold the plan's markets
        raise ConfigError(str(exc)) from exc
    config = config.model_copy(update={"pumps": {}})
    clock = SimClock(datetime(start.year, start.month, start.day, tzinfo=UTC))
    began = time.perf_counter()
    finance = build_finance(config, engine=bulk_engine(config), clock=clock)
    try:
        billing = build_billing_service(config, finance.hub.engine, clock)
        if sum(billing.outbox_counts().values()):
            raise DatabaseNotEmptyError("the database already holds billing's business; "
                                        "generate into an empty one")
        tally = Driver(plan, finance, billing, clock, progress).run([e for e, _ in entities])
        status = finance.hub.status_report()
    finally:
        finance.dispose()
    seconds = time.perf_counter() - began
    return summary(config, plan, tally, status.as_json(), seconds)


def summary(config: FinsyncConfig, plan: CompanyPlan, tally: Tally, status: dict[str, Any],
            seconds: float) -> dict[str, Any]:
    counted = {name: tally.events.get(kind, 0) for kind, name in _COUNTED.items()}
    events = sum(status["events"].values())
    return {
        "database": make_url(config.database_url).render_as_string(hide_password=True),
        "seed": plan.seed, "customers": len(plan.customers),
        "from": plan.start.isoformat(), "until": plan.end.isoformat(),
        **counted,
        "billing_commands": tally.commands,
        "events": events,
        "raw_events": sum(status["raw_events"].values()),
        "deliveries": status["deliveries"],
        "unresolved_exceptions": status["unresolved_exceptions"]["count"],
        "closes": dict(tally.closes),
        "refused": dict(tally.refused), "skipped": dict(tally.skipped),
        "seconds": round(seconds, 2),
        # where they went: billing's commands, the hub's pipeline and deliveries, the closes
        "seconds_by_part": {part: round(s, 2) for part, s in sorted(tally.seconds.items())},
        "events_per_s": round(events / seconds, 1) if seconds else None,
    }
