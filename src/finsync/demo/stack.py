"""The reference workflow on a real stack: Stripe (or localstripe) as billing, Tryton as the
ERP, the hub's store in PostgreSQL; a year of business and month-ends, then reconciliation
and the demo's report (`finsync demo --stack stripe-tryton`).

The demo plays the business at Stripe (`stripe_steps`); finsync hears of it only through
its Stripe connector (the catch-up poller reading `/v1/events`), posts to Tryton through
the posting buffer, recognises revenue in the embedded engine, and closes each month.

Rules:
- The year starts at Stripe's time of the customer (a test clock's time, or localstripe's
  now). Steps are dated as `stripe_steps` says; the month-ends are the twelve from the
  start's month on; one simulated clock (`SimClock`) drives the hub, moved to each step
  and month-end (and by retry back-off), never backwards.
- After each step that ran the hub is settled: polled, mapped and delivered until nothing
  is due (retries' back-off elapses on the clock). Each month-end settles, then closes the
  month in Tryton through `finsync close`'s service.
- Nothing is faked: a step this Stripe cannot do is reported skipped with why; the report
  says which steps ran. `ok` holds when reconciliation shows no break and no variance,
  the exception queue holds nothing unresolved, every close closed, replay left the books
  as they were and no step failed (`stack_report.problems` names what did not hold).
- The hub's database must be empty (the demo is a company's first year); the folder with
  `finsync.toml` is kept when asked, to explore with `finsync serve`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from finsync.audit.signing import write_new_key
from finsync.bootstrap import (
    Finance,
    build_engine,
    build_finance,
    build_usage,
    set_up_tryton_books,
    start_stripe_poll_at,
)
from finsync.config import ConfigError, FinsyncConfig, parse_config
from finsync.demo import stack_report
from finsync.demo.clock import SimClock
from finsync.demo.stack_config import (
    ENTITY,
    SIGNING_KEY,
    SOURCE,
    USAGE_SOURCE,
    StackSettings,
    config_text,
    has_password,
    write_config,
)
from finsync.demo.stripe_api import StripeApi, StripeCallError
from finsync.demo.stripe_steps import (
    CREDIT_NOTES,
    METERS,
    PRICES,
    TEST_CLOCKS,
    Capabilities,
    StripeBusiness,
)
from finsync.demo.workflow import USAGE
from finsync.domain.errors import FinsyncError
from finsync.domain.journal import JournalEntry
from finsync.domain.status import DeliveryStatus
from finsync.hub.acceptance import Outcome
from finsync.hub.usage import UsageIntake
from finsync.systems.billing.cycle import add_months

ACTOR = "controller"  # who closes each month (a principal id of the demo's [auth])
UPGRADE_DAY, SLA_DAY, REFUND_DAY = 134, 223, 247  # 15 May, 12 Aug, 5 Sep from 1 January
USAGE_DAY = 20  # of each usage period: the month's meter event
MONTHS = 12
SETTLE_ROUNDS = 60
LIVE_KEYS = ("sk_live_", "rk_live_")  # never: the demo charges cards


class StackError(FinsyncError):
    code = "stack_demo"


@dataclass(frozen=True, slots=True)
class Planned:
    """One step of the year: when, what, what it needs of Stripe, the step it follows."""

    at: datetime
    key: str
    title: str
    needs: tuple[str, ...] = ()
    after: str | None = None


@dataclass
class Year:
    """What happened: each step's outcome, the closes and their journals, usage taken."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)
    journals: list[JournalEntry] = field(default_factory=list)
    parked: int = 0
    metered: dict[str, int] = field(default_factory=lambda: {"sent": 0, "stored": 0,
                                                              "refused": 0})
    ran: set[str] = field(default_factory=set)


def run_stack(settings: StackSettings, directory: Path | None = None, *, keep: bool = False
              ) -> dict[str, Any]:
    """The year on the stack `settings` names, in `directory` (kept) or in a new temporary
    folder removed afterwards unless `keep`; the report as JSON values."""
    workdir = directory or Path(tempfile.mkdtemp(prefix="finsync-stack-"))
    try:
        report = _run(settings, workdir)
        kept = keep or directory is not None
        return {"workdir": str(workdir), "workdir_kept": kept, **report}
    finally:
        if directory is None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: StackSettings, workdir: Path) -> dict[str, Any]:
    api = StripeApi(settings.stripe_url, _stripe_key(settings))
    can = Capabilities.probe(api)  # read-only: nothing is made before finsync is ready
    now = datetime.now(UTC).replace(microsecond=0)
    years = (now.year, now.year + 1)
    config = _config(settings, workdir, years, meters=can.has(METERS))
    clock = SimClock(now)
    engine = build_engine(config)
    try:
        finance = build_finance(config, engine=engine, clock=clock)
        try:
            _require_empty(finance)
            _books(config, settings, years)
            business = StripeBusiness(api, can)
            start = business.open_account(now)
            start_stripe_poll_at(config, engine, SOURCE, int(start.timestamp()) - 1)
            usage = build_usage(config, engine, clock) if can.has(METERS) else None
            year = StackYear(finance, business, clock, usage).run(start)
            return stack_report.report(finance, business, year, settings, can, usage)
        finally:
            finance.ports.close()
    finally:
        engine.dispose()


def _stripe_key(settings: StackSettings) -> str:
    key = os.environ.get(settings.stripe_key_env, "")
    if not key:
        raise ConfigError(f"the Stripe API key is read from {settings.stripe_key_env}, which "
                          "is not set (a test-mode key sk_test_…, or any sk_… for localstripe)")
    if key.startswith(LIVE_KEYS):
        raise ConfigError(f"{settings.stripe_key_env} holds a live key: the stack demo makes "
                          "customers and charges cards, give it a test-mode key (sk_test_…)")
    return key


def _config(settings: StackSettings, workdir: Path, years: tuple[int, ...], *,
            meters: bool) -> FinsyncConfig:
    (workdir / "var").mkdir(parents=True, exist_ok=True)
    write_new_key(workdir / SIGNING_KEY)  # each close signs the trail's head with it
    text = config_text(settings, years, meters=meters)
    write_config(workdir, text)
    config = parse_config(tomllib.loads(text), workdir.resolve())
    if config.database_url != settings.database_url:
        raise ConfigError("a hub database URL with a password is read from "
                          "FINSYNC_DATABASE_URL only: set it there" if has_password(settings)
                          else "FINSYNC_DATABASE_URL names another database than the demo's "
                          "--database-url: unset it, or give the same URL")
    return config


def _require_empty(finance: Finance) -> None:
    if finance.hub.status()["raw_events"]:
        raise StackError("the hub's database holds events already: the stack demo is a "
                         "company's first year, give it an empty database")


def _books(config: FinsyncConfig, settings: StackSettings, years: tuple[int, ...]) -> None:
    """The company, its chart and fiscal years in Tryton, when missing."""
    password = config.secret("[systems.ledger] password", settings.tryton_password_env, None)
    set_up_tryton_books(settings.tryton_url, settings.tryton_database, settings.tryton_user,
                        password.reveal(), [settings.tryton_company], "USD", years)


class StackYear:
    """The year on the stack: Stripe's steps and finsync's month-ends, in date order."""

    def __init__(self, finance: Finance, business: StripeBusiness, clock: SimClock,
                 usage: UsageIntake | None) -> None:
        self.finance, self.business, self.clock, self.usage = finance, business, clock, usage
        self.hub = finance.hub
        self.year = Year()

    def run(self, start: datetime) -> Year:
        for item in plan(start):
            self.clock.at(item.at)
            if item.key.startswith("close_"):
                self._month_end(item)
            else:
                self._step(item)
        return self.year

    def _step(self, item: Planned) -> None:
        why = self._why_not(item)
        if why is not None:
            self._outcome(item, "skipped", why)
            return
        try:
            self.business.advance(item.at)
            detail = self._do(item)
        except StripeCallError as exc:
            self._outcome(item, "failed", str(exc))
            return
        self.year.ran.add(item.key)
        self._outcome(item, "ran", detail)
        self._settle()

    def _why_not(self, item: Planned) -> str | None:
        lacking = self.business.can.lacking(item.needs)
        if lacking is not None:
            return f"this Stripe has no {lacking}"
        if item.after is not None and item.after not in self.year.ran:
            return f"follows {item.after}, which did not run"
        return None

    def _do(self, item: Planned) -> str:
        if item.key == "subscribe":
            return self.business.subscribe()
        if item.key == "subscribe_usage":
            return self.business.subscribe_usage()
        if item.key == "upgrade":
            return self.business.upgrade()
        if item.key == "sla_credit":
            return self.business.sla_credit()
        if item.key == "refund":
            return self.business.refund()
        month = int(item.key.removeprefix("usage_"))
        return self._meter(month, item.at)

    def _meter(self, month: int, at: datetime) -> str:
        """The month's meter event to Stripe, and the same event to finsync's Stripe usage
        source (Build 8: what Stripe metered is finsync's usage too)."""
        event = self.business.meter(month, USAGE[month], at)
        self.year.metered["sent"] += 1
        if self.usage is not None:
            receipt = self.usage.receive(USAGE_SOURCE, json.dumps([event]).encode())
            self.year.metered["stored"] += receipt.stored
            self.year.metered["refused"] += len(receipt.refused)
        return f"{event.get('identifier')}: {event.get('payload', {}).get('value')} calls over"

    def _month_end(self, item: Planned) -> None:
        try:
            self.business.advance(item.at)  # Stripe bills what falls due by then
        except StripeCallError as exc:
            self._outcome(item, "failed", str(exc))
            return
        self._settle()
        period = item.key.removeprefix("close_")
        result = self.finance.close.close(ENTITY, period, ACTOR)
        self.year.journals.extend(result.journals)
        self.year.closes.append({"entity": ENTITY, "period": result.period,
                                 "status": result.status,
                                 "journals": [j.id for j in result.journals]})

    def _outcome(self, item: Planned, status: str, detail: str) -> None:
        self.year.steps.append({"step": item.title, "key": item.key,
                                "on": item.at.date().isoformat(), "status": status,
                                "detail": detail})

    def _settle(self) -> None:
        """Poll Stripe and run the hub until nothing is due, letting back-off elapse."""
        for _ in range(SETTLE_ROUNDS):
            run = self.hub.run_until_idle()
            self.year.parked += run.outcomes.get(Outcome.PARKED, 0)
            deliveries = self.hub.status()["deliveries"]
            if not deliveries.get(DeliveryStatus.PENDING) and not deliveries.get(
                    DeliveryStatus.IN_FLIGHT):
                return
            self.clock.tick(300)
        raise StackError("the hub did not settle: deliveries are still pending")


def plan(start: datetime) -> list[Planned]:
    """The year's steps and month-ends from `start`, in date order."""
    first = start.date()
    steps = [
        Planned(start, "subscribe", "annual seats: 500 x 120.00 USD, charged"),
        Planned(start, "subscribe_usage", "usage subscription: API calls over 1,000,000 a "
                "month at 0.002 USD", (PRICES, METERS)),
        Planned(_day(first, UPGRADE_DAY), "upgrade", "upgrade 500 -> 800 seats + premium "
                "analytics, prorated", (PRICES, TEST_CLOCKS), "subscribe"),
        Planned(_day(first, SLA_DAY), "sla_credit", "SLA credit memo: 5,000.00 USD off the "
                "first invoice", (CREDIT_NOTES, TEST_CLOCKS), "subscribe"),
        Planned(_day(first, REFUND_DAY), "refund", "refund: the SLA credit paid out in cash",
                (CREDIT_NOTES, TEST_CLOCKS), "sla_credit"),
    ]
    for month in range(MONTHS):
        steps.append(Planned(_day(add_months(first, month), USAGE_DAY), f"usage_{month:02d}",
                             f"usage, month {month + 1}: meter event of the calls over",
                             (PRICES, METERS, TEST_CLOCKS), "subscribe_usage"))
        period = add_months(first.replace(day=1), month)
        steps.append(Planned(_midnight(add_months(period, 1)), f"close_{period:%Y-%m}",
                             f"month-end close {period:%Y-%m}"))
    return sorted(steps, key=lambda s: s.at)  # stable: the first day's steps keep their order


def _day(first: date, offset: int) -> datetime:
    return _midnight(first + timedelta(days=offset)) + timedelta(hours=9)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
