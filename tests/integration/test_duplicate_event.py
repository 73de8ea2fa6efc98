"""Finding 4 (duplicate_event): the same source event id, or the same business key, with a
different body opens a `duplicate_event` with both bodies, a field-level diff and the money at
stake; a byte-identical resend is only counted. Finance chooses which body stands: the stored
one (the books do not move) or the received one, which takes the stored event's place only
while nothing of it is posted (`already_posted` otherwise). On SQLite and PostgreSQL, for a
resend under the same source event id and under the same business key."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import Finance, build_finance
from finsync.cli.main import app
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.domain.codec import JsonValue
from finsync.domain.diff import changes, describe
from finsync.domain.events import ContractAmended
from finsync.storage import event_log
from finsync.storage.db import reading
from finsync.storage.raw_log import RawIn
from finsync.triage.service import AlreadyPostedError, Keep
from tests.builders import contract_doc, envelope, invoice_doc, payment_doc, seats_amendment
from tests.clikit import cli_json as _cli
from tests.clikit import runner
from tests.people import ALICE, BOB

ROUTES = {"invoice.issued": ["ledger"], "payment.applied": ["ledger"]}
HOW = ["source_event_id", "business_key"]


@pytest.fixture
def world(tmp_path: Path, db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, SimClock]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    config = config.model_copy(update={"routes": ROUTES, "pumps": {}})
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, clock
    finance.hub.engine.dispose()


def _payment(amount: str, how: str = "source_event_id", *, again: bool = False) -> bytes:
    """Payment pay_1 of `amount`; `again`: sent a second time, under the same source event id
    or, with an id of its own, under the same business key."""
    sid = "pay-1-retry" if again and how == "business_key" else "pay-1"
    return json.dumps(envelope(
        "payment.applied", sid, ("payment", "pay_1", None),
        {"payment": payment_doc("pay_1", amount, "inv_1")}, correlation_id="ord_1",
        business_key="pay_1" if how == "business_key" else None)).encode()


def _invoice() -> bytes:
    return json.dumps(envelope("invoice.issued", "inv-1", ("invoice", "inv_1", None),
                               {"invoice": invoice_doc("inv_1", "60000.00")},
                               correlation_id="ord_1")).encode()


def _send(finance: Finance, *bodies: bytes) -> None:
    finance.hub.intake.store([RawIn("canonical", body, {}) for body in bodies])
    finance.hub.run_until_idle()


def _settle(finance: Finance, clock: SimClock) -> None:
    for _ in range(4):  # past any retry back-off
        clock.tick(600)
        finance.hub.run_until_idle()


def _applied(finance: Finance) -> list[tuple[str, str, str]]:
    return [(a.by, a.document_id, str(a.amount))
            for a in finance.ports.ledger().applications("le_us", date(2026, 12, 31))]


def _duplicate_events(finance: Finance, status: str | None = "open") -> list[dict[str, Any]]:
    return finance.triage.listing(status=status, exception_class="duplicate_event")


def test_diff_names_each_changed_field_by_path() -> None:
    before: JsonValue = {"payment": {"amount": "60000.00", "applications": [{"amount": "60000.00"}],
                                     "memo": "x"}}
    after: JsonValue = {"payment": {"amount": "59999.00",
                                    "applications": [{"amount": "59999.00"}, {}], "note": None}}
    assert describe(changes(before, after)).splitlines() == [
        'payment.amount: "60000.00" -> "59999.00"',
        'payment.applications[0].amount: "60000.00" -> "59999.00"',
        "payment.applications[1]: (absent) -> {}",
        'payment.memo: "x" -> (absent)',
        "payment.note: (absent) -> null",
    ]
    assert describe(changes(before, before)) == "(no field changed)"
    sixty: list[JsonValue] = list(range(60))
    many = describe(changes({"k": sixty}, {"k": [-1] * 60}), changes_max=50)
    assert many.splitlines()[-1] == "… and 10 more change(s) (at most 50 are listed)"


@pytest.mark.parametrize("how", HOW)
def test_changed_body_opens_duplicate_event_with_diff_and_money_at_stake(
        world: tuple[Finance, SimClock], how: str) -> None:
    finance, _ = world
    _send(finance, _invoice(), _payment("60000.00", how))
    _send(finance, _payment("59999.00", how, again=True))
    [row] = _duplicate_events(finance)
    assert row["amount_at_stake"] == "60000.00 USD"  # the larger of the two
    assert row["correlation_id"] == "ord_1"
    assert {"raw_event:2", "raw_event:3", "payment:pay_1"} <= set(row["objects"])
    shown = finance.triage.show(int(row["id"]))
    assert shown["detail"].splitlines() == [
        'payment.amount: "60000.00" -> "59999.00"',
        'payment.applications[0].amount: "60000.00" -> "59999.00"']
    # The stored event stands as it was; the changed body is kept, rejected, beside it.
    assert finance.hub.status()["events"] == {"accepted": 2, "rejected": 1}
    assert _applied(finance) == [("pay_1", "inv_1", "60000.00 USD")]
    # The same changed body again is counted, not opened a second time.
    _send(finance, _payment("59999.00", how, again=True))
    assert len(_duplicate_events(finance)) == 1
    assert finance.hub.status()["duplicates_ignored"] == 1


@pytest.mark.parametrize("how", HOW)
def test_identical_resend_is_counted_and_opens_nothing(
        world: tuple[Finance, SimClock], how: str) -> None:
    finance, _ = world
    _send(finance, _invoice(), _payment("60000.00", how))
    _send(finance, _payment("60000.00", how, again=True))
    status = finance.hub.status()
    assert status["duplicates_ignored"] == 1
    assert status["exceptions"] == {}
    assert status["deliveries"] == {"done": 2}


@pytest.mark.parametrize("how", HOW)
def test_keep_stored_closes_it_and_the_books_are_unchanged(
        world: tuple[Finance, SimClock], how: str) -> None:
    finance, _ = world
    _send(finance, _invoice(), _payment("60000.00", how))
    _send(finance, _payment("59999.00", how, again=True))
    books = (_applied(finance), finance.hub.status()["deliveries"])
    [row] = _duplicate_events(finance)
    asked = finance.triage.resolve_duplicate(int(row["id"]), Keep.STORED, ALICE,
                                             "the gateway resent a draft; 60,000 is right")
    assert asked.status == "pending_approval"  # 60,000.00 at stake is above the threshold
    done = finance.triage.approve(asked.action_id, BOB, "agreed")
    assert done.status == "done"
    finance.hub.run_until_idle()
    shown = finance.triage.show(int(row["id"]))
    assert shown["status"] == "resolved"
    assert [(a["action"], a["params"], a["requested_by"], a["decided_by"])
            for a in shown["actions"]] == [("choose_body", {"keep": "stored"}, "alice",
                                            "bob")]
    assert (_applied(finance), finance.hub.status()["deliveries"]) == books


@pytest.mark.parametrize("how", HOW)
def test_keep_received_before_delivery_posts_only_the_received_amount(
        world: tuple[Finance, SimClock], how: str) -> None:
    finance, clock = world
    # The payment comes before its invoice: its delivery waits (retrying), nothing posted.
    _send(finance, _payment("60000.00", how))
    assert finance.hub.status()["deliveries"] == {"pending": 1}
    _send(finance, _payment("59999.00", how, again=True))
    [row] = _duplicate_events(finance)
    asked = finance.triage.resolve_duplicate(int(row["id"]), Keep.RECEIVED, ALICE,
                                             "the gateway corrected the amount")
    assert asked.status == "pending_approval"
    done = finance.triage.approve(asked.action_id, BOB, "agreed")
    assert done.status == "done" and "stands in place of" in done.detail
    _send(finance, _invoice())
    _settle(finance, clock)
    assert _applied(finance) == [("pay_1", "inv_1", "59999.00 USD")]  # never 60,000.00
    status = finance.hub.status()
    assert status["deliveries"] == {"done": 2}
    assert status["events"] == {"accepted": 2, "rejected": 1}
    # Nothing about the superseded event is left open.
    assert finance.triage.listing(status=None) == finance.triage.listing(status="resolved")


@pytest.mark.parametrize("how", HOW)
def test_keep_received_after_delivery_is_refused_already_posted(
        world: tuple[Finance, SimClock], how: str) -> None:
    finance, _ = world
    _send(finance, _invoice(), _payment("60000.00", how))
    _send(finance, _payment("59999.00", how, again=True))
    [row] = _duplicate_events(finance)
    with pytest.raises(AlreadyPostedError) as refused:
        finance.triage.resolve_duplicate(int(row["id"]), Keep.RECEIVED, ALICE, "fix it")
    assert refused.value.code == "already_posted"
    assert "credit memo" in str(refused.value) and "--keep stored" in str(refused.value)
    assert finance.triage.show(int(row["id"]))["status"] == "open"
    assert _applied(finance) == [("pay_1", "inv_1", "60000.00 USD")]


def test_keep_received_posted_while_awaiting_approval_is_refused_on_approval(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    _send(finance, _payment("60000.00"))
    _send(finance, _payment("59999.00", again=True))
    [row] = _duplicate_events(finance)
    asked = finance.triage.resolve_duplicate(int(row["id"]), Keep.RECEIVED, ALICE, "fix")
    _send(finance, _invoice())
    _settle(finance, clock)  # the stored 60,000.00 is posted meanwhile
    with pytest.raises(AlreadyPostedError):
        finance.triage.approve(asked.action_id, BOB, "agreed")
    assert finance.triage.reject(asked.action_id, BOB, "posted already").status == "rejected"
    assert finance.triage.show(int(row["id"]))["status"] == "open"
    assert _applied(finance) == [("pay_1", "inv_1", "60000.00 USD")]


def _amendment(seats: int) -> bytes:
    return json.dumps(seats_amendment(seats)).encode()


def test_keep_received_for_a_parked_event_waits_in_its_place(
        world: tuple[Finance, SimClock]) -> None:
    finance, _ = world
    _send(finance, _amendment(12))  # v2 before v1: parked
    _send(finance, _amendment(13))
    [row] = _duplicate_events(finance)
    assert row["amount_at_stake"] == "1560.00 USD"  # 13 x 120.00, the larger contract value
    asked = finance.triage.resolve_duplicate(int(row["id"]), Keep.RECEIVED, ALICE, "13")
    finance.triage.approve(asked.action_id, BOB, "agreed")
    _send(finance, json.dumps(envelope(
        "contract.created", "con-v1", ("subscription_contract", "con_1", 1),
        {"contract": contract_doc("con_1", 1, 10, "120.00")}, correlation_id="ord_1")).encode())
    assert finance.hub.status()["events"] == {"accepted": 2, "rejected": 1}
    with reading(finance.hub.engine) as conn:
        stored = [event_log.get(conn, i) for i in event_log.select_ids(conn)]
    amended = [e.event.document for e in stored
               if e is not None and isinstance(e.event, ContractAmended)]
    assert [a.contract.lines[0].quantity for a in amended] == [13]  # the received body


def test_duplicate_event_is_chosen_from_the_cli(workdir: Path) -> None:
    """`finsync exceptions resolve-duplicate N --keep stored|received --note`."""
    stream = workdir / "payments.jsonl"
    stream.write_bytes(_payment("100.00") + b"\n" + _payment("99.99", again=True) + b"\n")
    _cli(["ingest", str(stream)])
    _cli(["run", "--no-wait"])  # the payment waits for its invoice: nothing posted
    [row] = _cli(["exceptions", "list", "--class", "duplicate_event"])["exceptions"]
    assert row["amount_at_stake"] == "100.00 USD"
    bad = runner.invoke(app, ["exceptions", "resolve-duplicate", str(row["id"]), "--keep",
                              "both", "--note", "x"])
    assert bad.exit_code == 2
    [outcome] = _cli(["exceptions", "resolve-duplicate", str(row["id"]), "--keep", "received",
                      "--note", "gateway corrected it"])["outcomes"]
    assert (outcome["action"], outcome["status"]) == ("choose_body", "done")
    shown = _cli(["exceptions", "show", str(row["id"])])
    assert shown["status"] == "resolved" and "kept the received body" in \
        shown["resolution_note"]






@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _cli(["init"])
    return tmp_path
