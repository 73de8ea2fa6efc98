"""Usage at volume: meter events stored once by id, bad items refused alone with codes,
totals per subscription, product and billing period in SQL (a day no period holds is its
own), one billing usage record per total, late events as delta totals of their own."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import sqlite

from finsync.api.app import create_app
from finsync.connectors.embedded.usage import EmbeddedUsage
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.clock import Period
from finsync.domain.errors import ExceptionClass, MappingError, PermanentError, TransientError
from finsync.domain.events import UsageRated
from finsync.domain.invoice import UsageRecord
from finsync.domain.limits import InputLimits
from finsync.hub.usage import UsageIntake
from finsync.storage import exception_log, usage_log
from finsync.storage.db import reading
from finsync.storage.migrate import upgrade
from finsync.systems.billing.handler import RunClock
from tests import authkit
from tests.hubkit import make_hub
from tests.integration.test_ledger_dispute_migration import blank  # noqa: F401 (a fixture)
from tests.unit.billing.servicekit import REGISTER, create, overage, seats, service

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _event(n: int, day: int = 1, quantity: int = 5, sub: str = "con_acme_2026",
           product: str = "prod_usage_overage") -> dict[str, object]:
    return {"id": f"m{n}", "subscription": sub, "product": product, "quantity": quantity,
            "timestamp": f"2026-03-{day:02d}T{n % 24:02d}:00:00Z"}


@dataclass
class FakeUsagePort:
    """A billing that records usage and lays no period (each day is one), unless given
    `periods`."""

    system: str = "billing"
    recorded: list[UsageRecord] = field(default_factory=list)
    fail: Exception | None = None
    periods: dict[str, tuple[Period, ...]] = field(default_factory=dict)
    unreadable: bool = False  # its periods cannot be read
    asked: int = 0  # times its periods were read

    def record_usage(self, record: UsageRecord, ctx: DeliveryContext) -> Receipt:
        if self.fail is not None:
            raise self.fail
        self.recorded.append(record)
        return Receipt(record.id)

    def usage_periods(self, spans: Mapping[str, Period]) -> Mapping[str, tuple[Period, ...]]:
        self.asked += 1
        if self.unreadable:
            raise TransientError("billing is down")
        return {sub: self.periods[sub] for sub in spans if sub in self.periods}


def _usage(engine: Engine, port: object = None, limits: InputLimits | None = None,
           now: datetime = NOW) -> UsageIntake:
    upgrade(engine)
    return UsageIntake(engine, lambda: now, port, ["metering"],  # type: ignore[arg-type]
                       lambda _s: limits or InputLimits(), settle_s=0)


def test_a_batch_keeps_good_items_refuses_bad_ones_and_stores_each_id_once(
        engine: Engine) -> None:
    usage = _usage(engine)
    items = [_event(1), _event(2), {"id": "m3", "subscription": "con_acme_2026"},
             {**_event(4), "quantity": -1}, {**_event(5), "timestamp": "2026-03-01"},
             _event(1), {**_event(6), "quantity": 2.5}, "not an object",
             {**_event(7), "id": "x" * 300}, {**_event(8), "timestamp": "1900-01-01T00:00Z"},
             {**_event(9), "timestamp": "9999-12-31T23:00:00-05:00"}]
    receipt = usage.receive("metering", json.dumps(items).encode())
    assert (receipt.stored, receipt.duplicates) == (2, 1)  # m1 twice in one batch
    assert [(r.index, r.code) for r in receipt.refused] == [
        (2, "missing_field"), (3, "invalid_quantity"), (4, "invalid_timestamp"),
        (6, "invalid_quantity"), (7, "invalid_meter_event"), (8, "string_too_long"),
        (9, "date_out_of_range"), (10, "date_out_of_range")]
    again = usage.receive("metering", json.dumps(items[:2]).encode())
    assert (again.stored, again.duplicates) == (0, 2)
    with reading(engine) as conn:
        assert usage_log.counts(conn)["events"] == 2
        row = conn.execute(select(usage_log.usage_events).where(
            usage_log.usage_events.c.event_id == "m2")).one()
    # the bulk path binds by the columns' types: the row reads back as it was sent
    assert (row.occurred_at, row.usage_day, row.received_at, row.quantity) == (
        datetime(2026, 3, 1, 2, tzinfo=UTC), date(2026, 3, 1), NOW, 5)
    with reading(engine) as conn:
        refusals = [r for r in exception_log.listing(conn, status=None, exception_class=None,
                                                     limit=100)
                    if r["class"] == ExceptionClass.MAPPING_ERROR]
    assert len(refusals) == 6  # one per source and code, counted, not one per item


def test_the_sqlite_text_is_what_sqlalchemy_would_bind() -> None:
    dialect = sqlite.dialect()
    at = usage_log.usage_events.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert at is not None
    for moment in (NOW, datetime(2026, 3, 1, 2, 3, 4, 567, tzinfo=UTC),
                   datetime(2026, 3, 1, 2, tzinfo=timezone(timedelta(hours=-5)))):
        assert usage_log.sqlite_datetime(moment) == at(moment)


@pytest.mark.parametrize(("body", "code"), [
    (b"[{broken", "invalid_json"), (b"\xff\xfe\x00", "invalid_json"),
    (b"[" * 100 + b"]" * 100, "json_too_deep")])
def test_an_unreadable_body_is_refused_whole(engine: Engine, body: bytes, code: str) -> None:
    usage = _usage(engine)
    with pytest.raises(MappingError) as refused:
        usage.receive("metering", body)
    assert refused.value.code == code


def test_an_id_sent_again_with_other_values_is_refused_not_counted_as_a_duplicate(
        engine: Engine) -> None:
    usage = _usage(engine)
    first = usage.receive("metering", json.dumps([_event(1), _event(2)]).encode())
    assert (first.stored, first.duplicates, first.refused) == (2, 0, ())
    # m1 again as it was (a duplicate), m2 again with another quantity, m3 new and then
    # again in the same batch at another time: the first of each stands.
    again = [_event(1), _event(2, quantity=7), _event(3), {**_event(3), "timestamp":
                                                           "2026-03-02T03:00:00Z"}]
    receipt = usage.receive("metering", json.dumps(again).encode())
    assert (receipt.stored, receipt.duplicates) == (1, 1)
    assert [(r.index, r.event_id, r.code) for r in receipt.refused] == [
        (1, "m2", "duplicate_event"), (3, "m3", "duplicate_event")]
    assert "quantity 5" in receipt.refused[0].message
    assert "this one says 7" in receipt.refused[0].message
    lines = ["", json.dumps(_event(1, quantity=9))]  # JSON lines: the index is the line's
    loaded = usage.load("metering", lines)
    assert [(r.index, r.code) for r in loaded.refused] == [(1, "duplicate_event")]
    with reading(engine) as conn:
        quantities = dict(conn.execute(select(usage_log.usage_events.c.event_id,
                                              usage_log.usage_events.c.quantity)).all())
        refusals = [r for r in exception_log.listing(conn, status=None, exception_class=None,
                                                     limit=100)
                    if r["fingerprint"].endswith(":duplicate_event")]
    assert quantities == {"m1": 5, "m2": 5, "m3": 5}
    assert len(refusals) == 1 and refusals[0]["occurrences"] == 2  # per request


def test_json_lines_refuse_a_bad_line_by_its_index(engine: Engine) -> None:
    usage = _usage(engine)
    lines = [json.dumps(_event(1)), "", "{nope", json.dumps(_event(2))]
    receipt = usage.load("metering", lines)
    assert receipt.stored == 2
    assert [(r.index, r.code) for r in receipt.refused] == [(2, "invalid_json")]
    with pytest.raises(MappingError, match="no usage source"):
        usage.load("elsewhere", lines)


def test_totals_per_item_and_day_and_a_late_event_is_a_delta_of_its_own(
        engine: Engine) -> None:
    port = FakeUsagePort()
    usage = _usage(engine, port)
    events = [_event(n, day=1 + n % 2, quantity=n) for n in range(1, 7)]
    events.append(_event(7, day=1, quantity=100, product="prod_other"))
    events.append(_event(8, day=9, quantity=1))  # not settled: 2026-03-10 is the cut-off
    usage.receive("metering", json.dumps(events).encode())
    run = usage.aggregate(date(2026, 3, 9))
    assert (run.events, run.totals) == (7, 3)
    handed = usage.hand_over()
    assert (handed.recorded, handed.refused, handed.waiting) == (3, 0, 0)
    got = {(r.product_id, r.occurred_on): r.quantity for r in port.recorded}
    # day 1: m2 + m4 + m6 = 12; day 2: m1 + m3 + m5 = 9; the other product alone
    assert got == {("prod_usage_overage", date(2026, 3, 1)): 2 + 4 + 6,
                   ("prod_usage_overage", date(2026, 3, 2)): 1 + 3 + 5,
                   ("prod_other", date(2026, 3, 1)): 100}
    usage.receive("metering", json.dumps([_event(9, day=1, quantity=7)]).encode())
    late = usage.aggregate(date(2026, 3, 9))
    assert (late.events, late.totals) == (1, 1)
    usage.hand_over()
    delta = port.recorded[-1]
    assert (delta.occurred_on, delta.quantity) == (date(2026, 3, 1), 7)
    assert delta.id not in {r.id for r in port.recorded[:-1]}  # a key of its own
    assert usage.hand_over() == type(handed)(0, 0, 0)  # nothing handed twice


def test_a_refused_total_opens_an_exception_and_a_transient_one_waits(
        engine: Engine) -> None:
    port = FakeUsagePort(fail=TransientError("billing is down"))
    usage = _usage(engine, port)
    usage.receive("metering", json.dumps([_event(1), _event(2, day=2)]).encode())
    usage.aggregate(date(2026, 3, 9))
    assert usage.hand_over().waiting == 2
    closed = PermanentError("rated through 2026-04-01",
                            exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
    closed.code = "usage_period_closed"
    port.fail = closed
    assert usage.hand_over().refused == 2
    with reading(engine) as conn:
        opened = exception_log.listing(conn, status=None, exception_class=None, limit=10)
        assert usage_log.counts(conn)["totals_refused"] == 2
    assert {r["class"] for r in opened} == {ExceptionClass.CLOSED_PERIOD}


def test_meter_events_reach_billing_as_one_record_per_item_and_period(
        engine: Engine) -> None:
    billing = service(engine)
    billing.execute(REGISTER)
    billing.execute(create(seats(), overage()))  # monthly usage periods from 2026-01-01
    usage = _usage(engine, EmbeddedUsage("billing", billing))
    events = [_event(n, day=1 + n % 31, quantity=1_000) for n in range(310)]
    events += [_event(900 + n, day=1 + n, sub="con_nobody") for n in range(2)]
    receipt = usage.receive("metering", json.dumps(events).encode())
    assert receipt.stored == 312
    # March has not ended: its events wait. Billing knows no con_nobody, so each of its
    # days is a period of its own (refused by billing below, one by one).
    early = usage.aggregate(date(2026, 3, 9))
    assert (early.events, early.totals) == (2, 2)
    run = usage.aggregate(date(2026, 4, 1))
    assert (run.events, run.totals) == (310, 1)  # 310 meter events over 31 days: one total
    handed = usage.hand_over()
    assert (handed.recorded, handed.refused) == (1, 2)
    rated = billing.execute(RunClock(date(2026, 4, 1))).emitted
    ratings = [e.event for e in rated if isinstance(e.event, UsageRated)]
    march = [r for r in ratings if r.usage_charge.period_start == date(2026, 3, 1)]
    assert len(march) == 1 and march[0].usage_charge.used == 310_000  # one event for the period
    usage.receive("metering", json.dumps([_event(999, day=31, quantity=5)]).encode())
    late = usage.aggregate(date(2026, 4, 2))  # a delta for March, which billing has rated
    assert (late.events, late.totals) == (1, 1)
    assert usage.hand_over().refused == 1
    with reading(engine) as conn:
        opened = exception_log.listing(conn, status=None, exception_class=None, limit=10)
    closed = [r for r in opened if r["class"] == ExceptionClass.CLOSED_PERIOD]
    unknown = [r for r in opened if "subscription:con_nobody" in r["objects"]]
    assert len(opened) == 3 and len(unknown) == 2
    assert len(closed) == 1 and "subscription:con_acme_2026" in closed[0]["objects"]


def test_a_period_is_totalled_once_it_ended_and_days_outside_periods_alone(
        engine: Engine) -> None:
    march, april = Period(date(2026, 3, 1), date(2026, 4, 1)), Period(date(2026, 4, 1),
                                                                      date(2026, 4, 20))
    port = FakeUsagePort(periods={"con_acme_2026": (march, april)})
    usage = _usage(engine, port, now=datetime(2026, 4, 30, tzinfo=UTC))
    events = [_event(n, day=1 + n % 31, quantity=n) for n in range(1, 63)]
    events += [{**_event(100), "timestamp": "2026-04-05T10:00:00Z"},
               {**_event(101), "timestamp": "2026-04-25T10:00:00Z"}]  # after the term
    usage.receive("metering", json.dumps(events).encode())
    first = usage.aggregate(date(2026, 4, 10))  # March ended; April has not
    assert (first.events, first.totals) == (62, 1)
    second = usage.aggregate(date(2026, 4, 30))
    assert (second.events, second.totals) == (2, 2)
    usage.hand_over()
    got = [(r.occurred_on, r.quantity) for r in port.recorded]
    assert got == [(date(2026, 3, 1), sum(range(1, 63))), (date(2026, 4, 1), 5),
                   (date(2026, 4, 25), 5)]
    with reading(engine) as conn:
        periods = conn.execute(select(usage_log.usage_totals.c.period_start,
                                      usage_log.usage_totals.c.period_end)
                               .order_by(usage_log.usage_totals.c.id)).all()
        assert conn.execute(select(func.count()).select_from(
            usage_log.usage_run_periods)).scalar_one() == 0  # a run's scratch, emptied
    assert periods == [(march.start, march.end), (april.start, april.end),
                       (date(2026, 4, 25), date(2026, 4, 26))]


def test_a_billing_that_cannot_be_read_leaves_every_event_waiting(engine: Engine) -> None:
    port = FakeUsagePort(unreadable=True)
    usage = _usage(engine, port)
    usage.receive("metering", json.dumps([_event(1)]).encode())
    with pytest.raises(TransientError):
        usage.aggregate(date(2026, 3, 9))
    assert usage.step(lambda: None) == 0
    assert usage.counts()["events_waiting"] == 1


def test_the_http_batch_endpoint_answers_per_item(engine: Engine, tmp_path: Path) -> None:
    usage = _usage(engine, now=datetime.now(UTC))
    hub = make_hub(engine, tmp_path)
    app = create_app(hub, usage=usage)
    today = datetime.now(UTC).date() - timedelta(days=1)
    good = {**_event(1), "timestamp": f"{today}T10:00:00+00:00"}
    lines = "\n".join([json.dumps(good), json.dumps({**good, "id": "m2", "quantity": -4})])
    with authkit.client(app, engine) as client:
        response = client.post("/v1/usage/metering/events", content=lines)
        unknown = client.post("/v1/usage/nobody/events", content=lines)
        all_bad = client.post("/v1/usage/metering/events",
                              content=json.dumps([{**good, "id": "m3", "quantity": -1}]))
        resent = client.post("/v1/usage/metering/events", content=json.dumps([good]))
        empty = [client.post("/v1/usage/metering/events", content=body)
                 for body in (b"[]", b"\n\n", b"")]
    # Nothing kept is not an acceptance: 422 with the same per-item list, or empty_batch.
    assert all_bad.status_code == 422
    assert all_bad.json()["error"]["code"] == "every_item_refused"
    assert [r["code"] for r in all_bad.json()["refused"]] == ["invalid_quantity"]
    assert (resent.status_code, resent.json()["duplicates"]) == (202, 1)
    assert [(r.status_code, r.json()["error"]["code"]) for r in empty] == \
        [(422, "empty_batch")] * 3
    assert response.status_code == 202
    assert response.json()["stored"] == 1
    assert [r["code"] for r in response.json()["refused"]] == ["invalid_quantity"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_source"
    # `finsync status` (and /v1/status) show the usage backlog: stored, not yet totalled.
    assert hub.status()["usage"] == {"events": 1, "events_waiting": 1}
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(usage_log.usage_events)
                            ).scalar_one() == 1


def test_totals_made_per_day_before_periods_keep_their_day(
        blank: Engine) -> None:  # noqa: F811 (the fixture imported above)
    engine = blank
    upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO usage_runs (run_at, through_day, events, totals) "
                          "VALUES (:at, '2026-03-09', 1, 1)"), {"at": NOW})
        conn.execute(text("INSERT INTO usage_totals (run_id, source, subscription_id, "
                          "product_id, usage_day, quantity, events, status) VALUES "
                          "(1, 'metering', 'con_acme_2026', 'prod_api', '2026-03-02', 7, 1, "
                          "'pending')"))
    upgrade(engine)
    with reading(engine) as conn:
        [total] = usage_log.pending_totals(conn, 10)
    assert (total.period, total.quantity) == (Period(date(2026, 3, 2), date(2026, 3, 3)), 7)


def test_the_serve_worker_reads_waiting_events_only_when_a_period_can_have_ended(
        engine: Engine) -> None:
    march = Period(date(2026, 3, 1), date(2026, 4, 1))
    port = FakeUsagePort(periods={"con_acme_2026": (march,)})
    now = [datetime(2026, 3, 10, 12, tzinfo=UTC)]
    upgrade(engine)
    usage = UsageIntake(engine, lambda: now[0], port, ["metering"], lambda _s: InputLimits(),
                        settle_s=3600)
    usage.receive("metering", json.dumps([_event(1, day=2)]).encode())
    assert (usage.step(lambda: None), port.asked) == (0, 1)  # March has not ended
    assert (usage.step(lambda: None), port.asked) == (0, 1)  # nothing changed: not asked
    usage.receive("metering", json.dumps([_event(2, day=10)]).encode())  # today's
    assert (usage.step(lambda: None), port.asked) == (0, 1)
    usage.receive("metering", json.dumps([_event(3, day=3)]).encode())  # a day before
    assert (usage.step(lambda: None), port.asked) == (0, 2)
    now[0] = datetime(2026, 4, 1, 1, 0, 1, tzinfo=UTC)  # March ended an hour ago
    assert (usage.step(lambda: None), port.asked) == (3 + 1, 3)  # 3 events, 1 recorded
    assert [(r.occurred_on, r.quantity) for r in port.recorded] == [(march.start, 15)]
