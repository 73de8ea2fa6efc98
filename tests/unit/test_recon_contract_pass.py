"""The checks over the revenue engine's contracts: contract values and credit memos are
compared in one pass over the engine's closing prices (read once for both checks, never
held), and the roll-forward takes the positions summed per currency."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from finsync.connectors.ports import BilledInvoice, ContractPrice, ContractValue, RevenuePosition
from finsync.domain.money import Money
from finsync.recon.books import Snapshot
from finsync.recon.checks import (
    contract_value_vs_transaction_price,
    credit_memos_vs_deferred_adjustments,
    deferred_revenue_rollforward,
)
from tests.ledgerkit import credit_memo, invoice


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def _position(contract: str, price: Money, billed: str = "0", recognised: str = "0",
              deferred: str = "0", asset: str = "0",
              credits: tuple[tuple[str, Money], ...] = ()) -> RevenuePosition:
    cur = price.currency
    return RevenuePosition(contract, "cus_1", cur, price, Money.of(billed, cur),
                           Money.of(recognised, cur), Money.of(deferred, cur),
                           Money.of(asset, cur), Money.zero(cur), credits)


def _snapshot() -> Snapshot:
    billed = replace(invoice("inv_b", ["150.00"]), contract_id="con_b")
    return Snapshot(
        "le_us", "USD", date(2026, 12, 31), [BilledInvoice(billed, usd("150.00"))],
        [credit_memo("cm_1", "inv_b", "10.00"), credit_memo("cm_2", "inv_b", "5.00"),
         credit_memo("cm_3", "inv_gone", "7.00")],
        [], [],
        [ContractValue("con_e", "cus_1", eur("50.00")), ContractValue("con_c", "cus_1",
         usd("300.00")), ContractValue("con_b", "cus_1", usd("200.00")),
         ContractValue("con_a", "cus_1", usd("100.00"))],
        [], [],
        [_position("con_e", eur("40.00"), billed="40.00", deferred="40.00")],
        [_position("con_d", usd("70.00"), recognised="10.00", asset="10.00"),
         _position("con_b", usd("150.00"), billed="150.00", recognised="150.00",
                   credits=(("cm_1", usd("10.00")),)),
         _position("con_a", usd("100.00"), billed="100.00", recognised="60.00",
                   deferred="40.00"),
         _position("con_e", eur("40.00"), billed="40.00", recognised="40.00")],
        [], {}, {"deferred_revenue": "2400", "contract_asset": "1250"}, {}, True)


def _found(items: tuple[object, ...]) -> list[tuple[str, str, str, str | None]]:
    return [(i.ref, str(i.expected), str(i.actual), i.cause)  # type: ignore[attr-defined]
            for i in items]


def test_contract_values_against_the_engines_prices() -> None:
    result = contract_value_vs_transaction_price(_snapshot())
    assert _found(result.items) == [
        ("subscription_contract:con_a", "100.00 USD", "100.00 USD", None),
        ("subscription_contract:con_b", "200.00 USD", "150.00 USD",
         "transaction_price_differs"),
        ("subscription_contract:con_c", "300.00 USD", "0.00 USD", "not_in_revenue_engine"),
    ]
    assert result.compared == 3  # con_d has no value in billing; con_e is not in USD
    assert result.notes == ("subscription_contract:con_e: -10.00 EUR "
                            "(transaction_price_differs)",)


def test_credit_memos_against_the_credits_the_engine_took() -> None:
    result = credit_memos_vs_deferred_adjustments(_snapshot())
    assert _found(result.items) == [
        ("credit_memo:cm_3", "7.00 USD", "0.00 USD", "not_in_revenue_engine"),
        ("credit_memo:cm_1", "10.00 USD", "10.00 USD", None),
        ("credit_memo:cm_2", "5.00 USD", "0.00 USD", "not_in_revenue_engine"),
    ]
    assert result.compared == 3


def test_both_checks_read_the_engines_contracts_once() -> None:
    """The service's stream of prices can be read only once: both checks of one entity's
    books take it from one pass, and find what each finds alone."""
    books = _snapshot().books()
    reads: list[int] = []

    def once() -> object:
        reads.append(1)
        return iter(list(books.closing()))

    streamed = replace(books, closing=once)
    assert contract_value_vs_transaction_price(streamed) == contract_value_vs_transaction_price(
        _snapshot())
    assert credit_memos_vs_deferred_adjustments(streamed) == (
        credit_memos_vs_deferred_adjustments(_snapshot()))
    assert reads == [1]
    assert [type(p) for p in books.closing()] == [ContractPrice] * 4


def test_rollforward_from_the_positions_summed_per_currency() -> None:
    """USD closing: billed 250.00, recognised 220.00, credits 10.00, deferred 40.00, asset
    10.00; no USD opening: 0 + (250 + 10) - 10 - 220 = 30.00 = 40.00 - 10.00. The EUR
    contract is counted once, in the note."""
    result = deferred_revenue_rollforward(_snapshot())
    [identity, deferred, asset] = result.items
    assert (identity.expected, identity.actual, identity.is_break) == (
        usd("30.00"), usd("30.00"), False)
    assert (deferred.expected, asset.expected) == (usd("40.00"), usd("10.00"))
    assert result.notes == (
        "opening 0.00, billings 260.00, adjustments -10.00, recognised 220.00, "
        "closing 30.00",
        "1 contract(s) not in USD are left out of the GL comparison (the GL holds them "
        "converted)")
