"""Values out of bounds, sent through the hub on SQLite and PostgreSQL: each is kept as a
rejected raw event with a `mapping_error` whose detail is the limit's code, and a good event
in the same batch is still delivered. Findings 2, 5 (its root cause) and 6 of the hardening
issue; the pure rules are in tests/unit/test_limits.py."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from finsync.bootstrap import build_mappers
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.stripe.mapping import translate as stripe_translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.domain.errors import ExceptionClass, MappingError
from finsync.domain.events import BusinessDomain
from finsync.domain.status import RawStatus
from finsync.hub.mapping import MapperRegistry, TranslatingMapper
from finsync.hub.service import Hub
from finsync.hub.settings import HubSettings
from finsync.hub.target import ledger_target
from finsync.storage import raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawEvent, RawIn
from tests.builders import envelope, payment_doc
from tests.hubkit import Clock, ingest, make_hub, settings

STRIPE_T0 = 1_795_810_008  # 2026-11-27, within the window of the hub's clock (2027-02-05)


def _payment(payment_id: str, **fields: Any) -> bytes:
    doc = {**payment_doc(payment_id, "10.00", "inv_1"), **fields}
    if "amount" in fields:
        doc["applications"] = [{"invoice_id": "inv_1", "amount": "1.00"}]
    sent = envelope("payment.applied", f"gw-{payment_id}", ("payment", payment_id, None),
                    {"payment": doc}, correlation_id=f"c-{payment_id}")
    return json.dumps(sent).encode()


GOOD = _payment("pay_good")


def _refused_alone(hub: Hub, engine: Engine, bad: bytes, code: str) -> None:
    """The bad raw event (id 1) is kept, rejected, with one `mapping_error` naming `code`;
    the good one beside it (id 2) is delivered."""
    with transaction(engine) as conn:
        kept = raw_log.get(conn, 1)
        good = raw_log.get(conn, 2)
    assert kept is not None and kept.body == bad and kept.status is RawStatus.REJECTED
    assert good is not None and good.status is RawStatus.MAPPED
    (error,) = hub.exceptions()
    assert (error["class"], error["detail"], error["raw_event_id"]) == \
        (ExceptionClass.MAPPING_ERROR, code, 1)
    assert hub.status()["deliveries"] == {"done": 1}


@pytest.mark.parametrize(("bad", "code"), [
    pytest.param(_payment("pay_1", amount="100000000000000000.00"), "amount_out_of_range",
                 id="1e17"),
    pytest.param(_payment("pay_1", amount="1234567890123456789012345678901234567890"),
                 "amount_out_of_range", id="40-digits"),
    pytest.param(_payment("pay_1", amount="10000000000000000.00"), "amount_out_of_range",
                 id="1e16"),
    pytest.param(_payment("pay_1", amount="5000000000000.00"), "amount_out_of_range",
                 id="above-amount_max"),
])
def test_amount_out_of_range_is_refused_and_the_batch_flows_on(
        engine: Engine, tmp_path: Path, bad: bytes, code: str) -> None:
    """Finding 2: an amount of 1e17 or 40 digits crashed the pipeline and left its delivery
    `in_flight`, stopping everything queued behind it; 1e16 USD posted without a check."""
    hub = make_hub(engine, tmp_path)
    ingest(hub, [bad, GOOD])
    hub.run_until_idle()
    _refused_alone(hub, engine, bad, code)


@pytest.mark.parametrize(("bad", "code"), [
    pytest.param(_payment("pay_1", amount="1e3"), "invalid_amount", id="exponent"),
    pytest.param(_payment("pay_1", amount="+10.00"), "invalid_amount", id="plus"),
    pytest.param(_payment("pay_1", amount=" 10.00"), "invalid_amount", id="space"),
    pytest.param(_payment("pay_1", amount="10.005"), "amount_precision", id="10.005-USD"),
    pytest.param(_payment("pay_1", received_on="9999-01-01"), "date_out_of_range", id="9999"),
    pytest.param(_payment("pay_1", received_on="1900-01-01"), "date_out_of_range", id="1900"),
])
def test_loose_amount_or_implausible_date_is_refused_and_the_batch_flows_on(
        engine: Engine, tmp_path: Path, bad: bytes, code: str) -> None:
    """Finding 6: `1e3`, `+10.00` and `' 10.00'` were booked; `10.005` USD failed later at
    the ledger; a payment dated 9999 or 1900 was filed as `closed_period`."""
    hub = make_hub(engine, tmp_path)
    ingest(hub, [bad, GOOD])
    hub.run_until_idle()
    _refused_alone(hub, engine, bad, code)


@pytest.mark.parametrize(("bad", "code"), [
    pytest.param(_payment("pay_1", customer_id="cus\u0000_1"), "control_character", id="nul"),
    pytest.param(_payment("pay_1", customer_id="cus\ud800"), "unpaired_surrogate",
                 id="surrogate"),
    pytest.param(_payment("pay_1", customer_id="c" * 256), "string_too_long", id="long-id"),
])
def test_unstorable_string_is_refused_and_the_batch_flows_on(
        engine: Engine, tmp_path: Path, bad: bytes, code: str) -> None:
    """Finding 5's root cause: a NUL in one event's `customer_id` made a good payment in the
    same batch fail terminally on PostgreSQL (which cannot store NUL in text)."""
    hub = make_hub(engine, tmp_path)
    ingest(hub, [bad, GOOD])
    hub.run_until_idle()
    _refused_alone(hub, engine, bad, code)


# -- Stripe events are bounded alike -------------------------------------------------------

def _intent(intent_id: str, amount: int = 5_000, created: int = STRIPE_T0,
            customer: str = "cus_1") -> bytes:
    intent = {"id": intent_id, "object": "payment_intent", "amount": amount,
              "amount_received": amount, "currency": "usd", "customer": customer,
              "created": created, "status": "succeeded"}
    event = {"id": f"evt_{intent_id}", "object": "event", "created": created,
             "type": "payment_intent.succeeded", "data": {"object": intent}}
    # As the poller stores it: a PaymentIntent's event is mapped with its invoice payments
    # (none: money on account), fetched beside it.
    delivery = {"object": "finsync.stripe_delivery", "event": event, "current": None,
                "version": None, "related": {"invoice_payments": {
                    "object": "list", "data": [], "has_more": False}}}
    return json.dumps(delivery).encode()


def _stripe_hub(engine: Engine, exports: Path) -> Hub:
    base = settings()
    owned = HubSettings({**base.ownership, BusinessDomain.PAYMENTS: "stripe"}, base.routes,
                        base.delivery, base.gap_wait_s, base.intake_batch_size)
    mappers = MapperRegistry({"stripe": TranslatingMapper(
        partial(stripe_translate, SourceSettings("le_us")))})
    return Hub(engine, owned, mappers, {"ledger": ledger_target(FileDropLedger("ledger", exports))},
               Clock(), "test-worker")


@pytest.mark.parametrize(("bad", "code"), [
    pytest.param(_intent("pi_bad", amount=10**17), "amount_out_of_range", id="ceiling"),
    pytest.param(_intent("pi_bad", amount=2 * 10**14), "amount_out_of_range",
                 id="above-amount_max"),
    pytest.param(_intent("pi_bad", created=253_402_214_400), "date_out_of_range", id="9999"),
    pytest.param(_intent("pi_bad", created=10**15), "date_out_of_range", id="no-calendar"),
    pytest.param(_intent("pi_bad", customer="cus\u0000"), "control_character", id="nul"),
])
def test_stripe_value_out_of_bounds_is_refused_and_the_batch_flows_on(
        engine: Engine, tmp_path: Path, bad: bytes, code: str) -> None:
    """Findings 2, 5 and 6 through the Stripe connector: its drafts are checked against the
    same limits as canonical ones."""
    hub = _stripe_hub(engine, tmp_path)
    hub.intake.store([RawIn("stripe", bad, {}), RawIn("stripe", _intent("pi_good"), {})])
    hub.run_until_idle()
    _refused_alone(hub, engine, bad, code)


# -- each source's limits come from the configuration --------------------------------------

def test_source_limits_come_from_its_configuration_section(tmp_path: Path) -> None:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["limits"]["billing"] = {"amount_max": "100"}
    mappers = build_mappers(parse_config(data, tmp_path))
    at = datetime(2026, 1, 20, tzinfo=UTC)
    body = _payment("pay_1", amount="100.01")
    with pytest.raises(MappingError, match=r"at most 100 .*\(amount_max\)") as refused:
        mappers.map(RawEvent(1, "billing", at, {}, body, RawStatus.RECEIVED))
    assert refused.value.code == "amount_out_of_range"
    assert mappers.map(RawEvent(2, "canonical", at, {}, body, RawStatus.RECEIVED))  # default
