"""Every value from outside is bounded: the codec's strict amount grammar and precision, and
the source's limits on the typed event (`domain.limits`). Findings 2, 5 (its root cause)
and 6 of the hardening issue, as pure checks; tests/integration/test_input_values.py sends
the same values through the hub."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain import amount, codec
from finsync.domain.contract import ContractLine, RampStep
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import MappingError
from finsync.domain.events import CATALOGUE, AnyEvent, PaymentApplied, RevenueJournalRecorded
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.limits import (
    COUNT_MAX,
    VERSION_MAX,
    InputLimits,
    check_draft,
    check_event,
)
from finsync.domain.money import AMOUNT_CEILING, CURRENCY_EXPONENTS, Money
from finsync.domain.payment import Payment
from finsync.domain.refs import ExternalRefs
from tests.builders import contract_doc, envelope, payment_doc
from tests.strategies import EVENTS

RECEIVED = date(2026, 2, 1)
LIMITS = InputLimits()


def _payment(amount: object = "10.00", **fields: Any) -> dict[str, Any]:
    doc = payment_doc("pay_1", "10.00", "inv_1")
    doc["amount"] = amount
    doc["applications"][0]["amount"] = "1.00"
    return {**doc, **fields}


def _draft(payment: dict[str, Any], **header: Any) -> DraftEnvelope:
    sent = envelope("payment.applied", "gw-1", ("payment", "pay_1", None),
                    {"payment": payment}, correlation_id="c")
    return codec.draft_from_json({**sent, **header})


def _refusal(payment: dict[str, Any], **header: Any) -> str:
    """The code of the refusal of one payment envelope, read and checked as the hub does."""
    with pytest.raises(MappingError) as refused:
        check_draft(_draft(payment, **header), LIMITS, RECEIVED)
    return refused.value.code


def _money(amount: str, currency: str) -> Money:
    return codec.decode(Money, {"amount": amount, "currency": currency}, "amount")


def _price(amount: str) -> Money:
    line = contract_doc("con_1", 1, 1, amount)["lines"][0]
    return codec.decode(ContractLine, line, "line", "USD").unit_price


# -- the amount grammar (finding 6) ----------------------------------------------------------

@pytest.mark.parametrize("spelt", [
    "1e3", "1E+3", "+10.00", " 10.00", "10.00 ", "10.00\n", "010.00", "00", "-01", "1.",
    ".5", "1,000.00", "NaN", "nan", "Infinity", "-Infinity", "sNaN", "--1", "",
    "\u0661\u0660",  # Arabic-Indic digits: Decimal reads them, the grammar does not
    "1_000",
])
def test_amount_outside_the_grammar_is_refused_as_invalid_amount(spelt: str) -> None:
    """Finding 6: `1e3`, `+10.00` and `' 10.00'` were booked as amounts."""
    with pytest.raises(MappingError, match=r"amount must be a plain decimal string") as refused:
        _money(spelt, "USD")
    assert refused.value.code == "invalid_amount"


@pytest.mark.parametrize("sent", [1000, 10.5, True, ["1"], {"amount": "1"}])
def test_amount_that_is_no_string_is_refused_as_invalid_amount(sent: object) -> None:
    assert _refusal(_payment(sent)) == "invalid_amount"


@pytest.mark.parametrize(("spelt", "currency"), [
    ("10.005", "USD"), ("1.5", "JPY"), ("0.0001", "KWD"), ("-0.001", "EUR")])
def test_document_amount_finer_than_minor_units_is_refused_as_amount_precision(
        spelt: str, currency: str) -> None:
    """Finding 6: `10.005` USD was accepted, then failed later at the ledger."""
    with pytest.raises(MappingError, match="minor units") as refused:
        _money(spelt, currency)
    assert refused.value.code == "amount_precision"


@pytest.mark.parametrize(("spelt", "currency"), [
    ("10.00", "USD"), ("10", "USD"), ("10.5", "USD"), ("1250", "JPY"), ("1.250", "KWD"),
    ("-0.01", "USD"), ("0", "USD"), ("999999999999999.999", "KWD")])
def test_document_amount_at_its_precision_is_read_exactly(spelt: str, currency: str) -> None:
    money = _money(spelt, currency)
    assert money == Money(Decimal(spelt), currency)
    assert codec.encode(money) == {"amount": spelt, "currency": currency}


def test_contract_price_may_carry_28_significant_digits() -> None:
    """Billing restates annual prices per quarter: 28 digits, finer than minor units."""
    quarter = Decimal("120000.00") * 91 / 365  # 29917.80821917808219178082192
    assert len(quarter.as_tuple().digits) == 28
    assert _price(amount.plain(quarter)).amount == quarter
    with pytest.raises(MappingError, match="at most 28") as refused:
        _price(amount.plain(quarter) + "1")
    assert refused.value.code == "amount_precision"


def test_ramp_step_price_is_a_price_too() -> None:
    step = codec.decode(RampStep, {"starts_on": "2026-07-01", "quantity": 2,
                                   "unit_price": "0.0123456789"}, "ramp[0]", "USD")
    assert step.unit_price.amount == Decimal("0.0123456789")


@pytest.mark.parametrize("spelt", [
    "1000000000000000.00",  # the ceiling itself
    "100000000000000000.00",  # finding 2: 1e17 jammed the deliveries
    "1234567890123456789012345678901234567890",  # finding 2: 40 digits
    "-1000000000000000"])
def test_document_amount_at_or_above_the_ceiling_is_refused_before_any_document_is_built(
        spelt: str) -> None:
    """Finding 2: amounts the books cannot hold (64-bit minor units, 28-digit arithmetic)."""
    with pytest.raises(MappingError, match="AMOUNT_CEILING") as refused:
        check_draft(_draft(_payment(spelt)), LIMITS, RECEIVED)
    assert refused.value.code == "amount_out_of_range"


def test_amount_written_in_exponent_form_is_read_back() -> None:
    """An amount computed as `1E+2` is written `100`, which the strict reader accepts."""
    money = Money(Decimal("1E+2"), "USD")
    assert codec.encode(money) == {"amount": "100", "currency": "USD"}
    assert _money("100", "USD") == money


document_amounts = st.from_regex(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?", fullmatch=True)
prices = st.from_regex(r"-?(0|[1-9][0-9]{0,13})(\.[0-9]{1,14})?", fullmatch=True)


@given(st.from_regex(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?", fullmatch=True))
def test_any_amount_the_grammar_accepts_parses_exactly(spelt: str) -> None:
    assert amount.plain(amount.parse_amount(spelt, "amount")) == spelt


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(document_amounts)
def test_any_document_amount_the_grammar_accepts_round_trips_exactly(spelt: str) -> None:
    """KWD carries 3 places, so every spelling drawn here is a KWD amount; only `-0` comes
    back as `0` (there is no negative zero in the books)."""
    written = codec.encode(_money(spelt, "KWD"))
    assert written == {"amount": spelt.removeprefix("-") if Decimal(spelt).is_zero() else spelt,
                       "currency": "KWD"}


@given(prices)
def test_any_price_the_grammar_accepts_round_trips_exactly(spelt: str) -> None:
    price = _price(spelt)
    expected = spelt.removeprefix("-") if Decimal(spelt).is_zero() else spelt
    assert codec.encode(price, "USD") == expected
    assert price.amount == Decimal(spelt)


# -- amounts on the typed event (finding 2) ---------------------------------------------------

def _event(amount: str = "10.00", received_on: date = date(2026, 1, 15),
           customer_id: str = "cus_1", refs: ExternalRefs | None = None) -> AnyEvent:
    money = Money(Decimal(amount), "USD")
    return PaymentApplied(Payment("pay_1", customer_id, "le_us", money, received_on, (),
                                  refs or ExternalRefs()))


def _code(event: AnyEvent, limits: InputLimits = LIMITS) -> str:
    with pytest.raises(MappingError) as refused:
        check_event(event, limits, RECEIVED)
    return refused.value.code


def test_amount_above_amount_max_is_refused() -> None:
    """Finding 2: 1e16 USD posted without any check."""
    assert _code(_event("10000000000000000.00")) == "amount_out_of_range"
    with pytest.raises(MappingError, match=r"at most 1,000,000,000,000 .*\(amount_max\)"):
        check_event(_event("1000000000000.01"), LIMITS, RECEIVED)


def test_amount_at_amount_max_is_accepted_and_the_limit_is_per_source() -> None:
    check_event(_event("1000000000000.00"), LIMITS, RECEIVED)
    assert _code(_event("100.01"), InputLimits(amount_max=Decimal(100))) == \
        "amount_out_of_range"


def test_contract_price_above_amount_max_is_refused() -> None:
    doc = contract_doc("con_1", 1, 1, "5000000000000.5")
    sent = envelope("contract.created", "e1", ("subscription_contract", "con_1", 1),
                    {"contract": doc}, correlation_id="c")
    with pytest.raises(MappingError, match=r"contract\.lines\[0\]\.unit_price") as refused:
        check_draft(codec.draft_from_json(sent), LIMITS, RECEIVED)
    assert refused.value.code == "amount_out_of_range"


# -- dates (finding 6) -----------------------------------------------------------------------

@pytest.mark.parametrize("day", [date(9999, 1, 1), date(1900, 1, 1), date(1996, 1, 31),
                                 date(2056, 2, 2)])
def test_date_outside_the_window_is_refused(day: date) -> None:
    """Finding 6: a payment dated 9999 or 1900 was filed as `closed_period`."""
    assert _code(_event(received_on=day)) == "date_out_of_range"


@pytest.mark.parametrize("day", [date(1996, 2, 1), date(2056, 2, 1)])
def test_date_at_the_edge_of_the_window_is_accepted(day: date) -> None:
    check_event(_event(received_on=day), LIMITS, RECEIVED)


def test_window_from_29_february_ends_on_the_28th() -> None:
    payment = _event(received_on=date(2025, 2, 28))
    check_event(payment, InputLimits(years_back=1), date(2024, 2, 29))
    with pytest.raises(MappingError, match=r"2023-02-28 \.\. 2054-02-28"):
        check_event(_event(received_on=date(2023, 2, 27)), InputLimits(years_back=1),
                    date(2024, 2, 29))


def test_envelope_occurred_at_is_in_the_window_too() -> None:
    assert _refusal(_payment(), occurred_at="2099-01-01T00:00:00+00:00") == "date_out_of_range"


# -- strings (finding 5's root cause) --------------------------------------------------------

def test_nul_in_an_id_is_refused_as_control_character() -> None:
    """Finding 5: a NUL in one event's `customer_id` failed its whole batch on PostgreSQL."""
    with pytest.raises(MappingError, match=r"payment\.customer_id .*U\+0000 at position 3"):
        check_event(_event(customer_id="cus\x00_1"), LIMITS, RECEIVED)
    assert _refusal(_payment(customer_id="cus\x00_1")) == "control_character"


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f"])
def test_c0_control_characters_are_refused(char: str) -> None:
    assert _code(_event(customer_id=f"cus{char}")) == "control_character"


def test_tab_newline_and_carriage_return_are_allowed() -> None:
    check_event(_journal(memo="accrual\tJanuary\r\nsecond line"), LIMITS, RECEIVED)


def test_unpaired_surrogate_is_refused() -> None:
    """A JSON escape `\\ud800` reads as a string no database can store as UTF-8."""
    assert _code(_event(customer_id="cus\ud800")) == "unpaired_surrogate"
    assert _refusal(_payment(customer_id="cus\udfff")) == "unpaired_surrogate"


def test_id_longer_than_id_max_chars_is_refused() -> None:
    check_event(_event(customer_id="c" * 255), LIMITS, RECEIVED)
    with pytest.raises(MappingError, match=r"256 characters: at most 255 \(id_max_chars\)"):
        check_event(_event(customer_id="c" * 256), LIMITS, RECEIVED)
    assert _code(_event(customer_id="c" * 17), InputLimits(id_max_chars=16)) == \
        "string_too_long"


def test_free_text_has_the_text_limit() -> None:
    journal = _journal(memo="m" * 4000)
    check_event(journal, LIMITS, RECEIVED)
    assert _code(_journal(memo="m" * 4001)) == "string_too_long"
    assert _code(_journal(memo="m" * 300), InputLimits(text_max_chars=299)) == \
        "string_too_long"


def _journal(memo: str = "accrual", account: str = "4000",
             dimensions: tuple[tuple[str, str], ...] = ()) -> AnyEvent:
    lines = (JournalLine("2400", Side.DEBIT, Money(Decimal("10.00"), "USD")),
             JournalLine(account, Side.CREDIT, Money(Decimal("10.00"), "USD"), dimensions))
    return RevenueJournalRecorded(JournalEntry("je_1", "le_us", date(2026, 1, 31), memo,
                                               lines))


def test_every_nested_string_is_seen() -> None:
    """References, dimensions and journal lines are walked like any field."""
    refs = ExternalRefs.of({"stripe": "pi\x00"})
    with pytest.raises(MappingError, match=r"payment\.external_refs\.stripe"):
        check_event(_event(refs=refs), LIMITS, RECEIVED)
    with pytest.raises(MappingError, match=r"journal_entry\.lines\[1\]\.dimensions\[0\]\[1\]"):
        check_event(_journal(dimensions=(("cost_centre", "cc\x00"),)), LIMITS, RECEIVED)
    with pytest.raises(MappingError, match=r"journal_entry\.lines\[1\]\.account"):
        check_event(_journal(account="a" * 256), LIMITS, RECEIVED)


@pytest.mark.parametrize("key", ["source", "source_event_id", "correlation_id",
                                 "causation_id", "business_key"])
def test_envelope_header_strings_are_ids(key: str) -> None:
    assert _refusal(_payment(), **{key: "x" * 256}) == "string_too_long"
    assert _refusal(_payment(), **{key: "x\x00"}) == "control_character"


# -- integers --------------------------------------------------------------------------------

def test_quantity_and_version_are_bounded() -> None:
    doc = contract_doc("con_1", 1, COUNT_MAX + 1, "1.00")
    sent = envelope("contract.created", "e1", ("subscription_contract", "con_1", 1),
                    {"contract": doc}, correlation_id="c")
    with pytest.raises(MappingError, match=r"contract\.lines\[0\]\.quantity") as refused:
        check_draft(codec.draft_from_json(sent), LIMITS, RECEIVED)
    assert refused.value.code == "integer_out_of_range"
    big = VERSION_MAX + 1
    sent = envelope("contract.created", "e1", ("subscription_contract", "con_1", big),
                    {"contract": contract_doc("con_1", big, 1, "1.00")}, correlation_id="c")
    with pytest.raises(MappingError, match=r"VERSION_MAX") as refused:
        check_draft(codec.draft_from_json(sent), LIMITS, RECEIVED)
    assert refused.value.code == "integer_out_of_range"


# -- the walk covers every class --------------------------------------------------------------

@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=lambda c: c.name.value)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_class_is_walked_to_its_leaves(cls: type[AnyEvent],
                                                   data: st.DataObject) -> None:
    """Every kind of value in every catalogue class has a rule: the check refuses with a
    code or passes, never `TypeError` for a value it does not know."""
    event = data.draw(EVENTS[cls])
    try:
        check_event(event, InputLimits(years_back=200, years_ahead=200), RECEIVED)
    except MappingError as refused:
        assert refused.code in {"control_character", "unpaired_surrogate",
                                "amount_out_of_range", "date_out_of_range"}


def test_ceiling_keeps_minor_units_of_every_currency_in_64_bits() -> None:
    assert AMOUNT_CEILING.scaleb(max(CURRENCY_EXPONENTS.values())) < 2**63
