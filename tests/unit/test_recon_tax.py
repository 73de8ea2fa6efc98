"""The seventh check, tax on billing's documents vs tax payable in the ERP, on hand-written
streams: agreement, each cause of a break, what explains one, a re-routed month, other
currencies, and the report per jurisdiction and month."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.ports import TaxAmount
from finsync.domain.money import Money
from finsync.recon.books import Books
from finsync.recon.checks import CHECKS
from finsync.recon.merge import StreamOrderError
from finsync.recon.model import CheckResult
from finsync.recon.tax import NAME, tax_document, tax_ref, tax_vs_tax_payable

AS_OF = date(2026, 3, 31)
# inv_1 (January, New York): 8.00 to the state, 9.00 to the city; cm_1 (February) gives
# back 2.00 and 2.25 of it; inv_2 (March, Germany): 19.00 VAT; inv_old: 2.50 without a
# breakdown.
BILLED = (
    TaxAmount("cm_1", "US-NY", "2026-02", "USD", -200),
    TaxAmount("cm_1", "US-NY-NYC", "2026-02", "USD", -225),
    TaxAmount("inv_1", "US-NY", "2026-01", "USD", 800),
    TaxAmount("inv_1", "US-NY-NYC", "2026-01", "USD", 900),
    TaxAmount("inv_2", "DE", "2026-03", "USD", 1900),
    TaxAmount("inv_old", "", "2026-01", "USD", 250),
)


def _books(billed: Sequence[TaxAmount], booked: Sequence[TaxAmount] | None,
           explained: Mapping[str, str] | None = None, watched: Sequence[str] = ()) -> Books:
    def nothing() -> tuple[()]:
        return ()

    return Books("le_us", "USD", AS_OF, nothing, nothing, nothing, nothing, nothing, nothing,
                 nothing, nothing, nothing, nothing, (), {}, {}, explained or {}, False,
                 watched, billing_tax=lambda: iter(billed),
                 erp_tax=None if booked is None else (lambda: iter(booked)))


def _run(billed: Sequence[TaxAmount], booked: Sequence[TaxAmount] | None,
         **more: object) -> CheckResult:
    return tax_vs_tax_payable(_books(billed, booked, **more))  # type: ignore[arg-type]


def _breaks(result: CheckResult) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(i.ref, str(i.expected.amount), str(i.actual.amount), i.cause, i.explained_by)
            for i in result.breaks]


def test_it_is_the_seventh_check() -> None:
    assert len(CHECKS) == 7 and CHECKS[-1] is tax_vs_tax_payable
    assert tax_vs_tax_payable.__name__ == NAME


def test_the_same_tax_on_both_sides_agrees() -> None:
    result = _run(BILLED, BILLED)
    assert result.breaks == () and result.variance == Money.zero("USD")
    assert result.item_count == 6
    assert [i.ref for i in result.items] == [
        "tax:US-NY:2026-02:cm_1", "tax:US-NY-NYC:2026-02:cm_1", "tax:US-NY:2026-01:inv_1",
        "tax:US-NY-NYC:2026-01:inv_1", "tax:DE:2026-03:inv_2", "tax:none:2026-01:inv_old"]
    # Per jurisdiction and month: New York's January 8.00, February -2.00 …
    assert result.notes == (
        "DE 2026-03 billing 19.00 USD, ERP 19.00 USD",
        "US-NY 2026-01 billing 8.00 USD, ERP 8.00 USD",
        "US-NY 2026-02 billing -2.00 USD, ERP -2.00 USD",
        "US-NY-NYC 2026-01 billing 9.00 USD, ERP 9.00 USD",
        "US-NY-NYC 2026-02 billing -2.25 USD, ERP -2.25 USD",
        "none 2026-01 billing 2.50 USD, ERP 2.50 USD")


def test_tax_the_erp_does_not_hold_breaks_as_not_in_erp() -> None:
    result = _run(BILLED, [r for r in BILLED if r.document_id != "inv_1"])
    assert _breaks(result) == [
        ("tax:US-NY:2026-01:inv_1", "8.00", "0.00", "not_in_erp", None),
        ("tax:US-NY-NYC:2026-01:inv_1", "9.00", "0.00", "not_in_erp", None)]
    assert result.variance == Money.of("17.00", "USD")  # 8.00 + 9.00
    assert "US-NY 2026-01 billing 8.00 USD, ERP 0.00 USD; 1 break(s) in inv_1 (not_in_erp)" \
        in result.notes


def test_tax_billing_does_not_know_breaks_as_not_in_billing() -> None:
    stray = TaxAmount("inv_9", "US-TX", "2026-02", "USD", 625)
    result = _run(BILLED, sorted([*BILLED, stray], key=lambda r: (r.document_id,
                                                                 r.jurisdiction)))
    assert _breaks(result) == [("tax:US-TX:2026-02:inv_9", "0.00", "6.25", "not_in_billing",
                                None)]
    assert "US-TX 2026-02 billing 0.00 USD, ERP 6.25 USD; 1 break(s) in inv_9 " \
        "(not_in_billing)" in result.notes


def test_amounts_that_differ_break_and_never_net() -> None:
    """+1.00 on New York's line and -1.00 on the city's: two breaks, variance 2.00."""
    booked = [TaxAmount(r.document_id, r.jurisdiction, r.month, r.currency,
                        r.amount_minor + {"US-NY": 100, "US-NY-NYC": -100}[r.jurisdiction])
              if r.document_id == "inv_1" else r for r in BILLED]
    result = _run(BILLED, booked)
    assert _breaks(result) == [
        ("tax:US-NY:2026-01:inv_1", "8.00", "9.00", "tax_differs", None),
        ("tax:US-NY-NYC:2026-01:inv_1", "9.00", "8.00", "tax_differs", None)]
    assert result.variance == Money.of("2.00", "USD")


def test_a_jurisdiction_booked_without_its_breakdown_breaks_both_ways() -> None:
    """The ERP holds inv_2's 19.00 as tax without a jurisdiction: DE is missing there, and
    the ERP's unassigned 19.00 is unknown to billing."""
    booked = [r if r.document_id != "inv_2" else TaxAmount("inv_2", "", "2026-03", "USD", 1900)
              for r in BILLED]
    result = _run(BILLED, booked)
    assert _breaks(result) == [  # "" (no jurisdiction) before "DE"
        ("tax:none:2026-03:inv_2", "0.00", "19.00", "not_in_billing", None),
        ("tax:DE:2026-03:inv_2", "19.00", "0.00", "not_in_erp", None)]


def test_an_exception_naming_the_document_explains_its_breaks() -> None:
    explained = {"invoice:inv_1": "exception 7 (target_unavailable)",
                 "credit_memo:cm_1": "exception 8 (closed_period)"}
    result = _run(BILLED, [r for r in BILLED if r.document_id == "inv_2"], explained=explained)
    causes = {ref: why for ref, _, _, _, why in _breaks(result)}
    assert causes == {"tax:US-NY:2026-02:cm_1": "exception 8 (closed_period)",
                      "tax:US-NY-NYC:2026-02:cm_1": "exception 8 (closed_period)",
                      "tax:US-NY:2026-01:inv_1": "exception 7 (target_unavailable)",
                      "tax:US-NY-NYC:2026-01:inv_1": "exception 7 (target_unavailable)",
                      "tax:none:2026-01:inv_old": None}
    assert [i.ref for i in result.unexplained] == ["tax:none:2026-01:inv_old"]


def test_a_document_booked_in_another_month_is_no_break() -> None:
    """inv_1 was issued in January, a closed month; the ERP booked it on 1 February."""
    booked = [TaxAmount(r.document_id, r.jurisdiction, "2026-02", r.currency, r.amount_minor)
              if r.document_id == "inv_1" else r for r in BILLED]
    result = _run(BILLED, booked)
    assert result.breaks == ()
    assert "tax:US-NY:2026-01:inv_1" in {i.ref for i in result.items}  # billing's month
    assert "US-NY 2026-01 billing 8.00 USD, ERP 0.00 USD" in result.notes
    assert "US-NY 2026-02 billing -2.00 USD, ERP 6.00 USD" in result.notes  # 8.00 - 2.00
    assert "inv_1 US-NY issued in 2026-01, booked in 2026-02 (not a break)" in result.notes
    # A note with a colon names a break (the convention every check's readers rely on).
    assert not [n for n in result.notes if ":" in n]


def test_a_zero_line_against_nothing_agrees() -> None:
    exempt = TaxAmount("inv_ca", "US-CA", "2026-03", "USD", 0)  # California exempts SaaS
    result = _run(sorted([*BILLED, exempt], key=lambda r: (r.document_id, r.jurisdiction)),
                  BILLED)
    assert result.breaks == () and result.item_count == 7


def test_other_currencies_are_compared_into_the_notes() -> None:
    billed = [TaxAmount("inv_eur", "DE", "2026-03", "EUR", 1900)]
    result = _run(billed, [TaxAmount("inv_eur", "DE", "2026-03", "EUR", 1800)])
    assert result.items == () and result.variance == Money.zero("USD")
    assert "tax:DE:2026-03:inv_eur: -1.00 EUR (tax_differs)" in result.notes
    assert "DE 2026-03 billing 19.00 EUR, ERP 18.00 EUR; 1 break(s) in inv_eur " \
        "(tax_differs)" in result.notes


def test_an_erp_that_cannot_tell_tax_per_document_is_not_compared() -> None:
    result = _run(BILLED, None)
    assert result.items == () and result.item_count == 0
    assert result.notes == ("not compared, the ERP does not report tax payable per document",)


def test_agreeing_items_an_open_break_watches_are_kept() -> None:
    from finsync.recon.model import AGREEING_KEPT_MAX

    many = [TaxAmount(f"inv_{n:05d}", "DE", "2026-03", "USD", 100)
            for n in range(AGREEING_KEPT_MAX + 5)]
    last = tax_ref("DE", "2026-03", many[-1].document_id)
    result = _run(many, many, watched=[last])
    assert result.item_count == AGREEING_KEPT_MAX + 5
    assert len(result.items) == AGREEING_KEPT_MAX + 1 and result.items[-1].ref == last


def test_a_stream_out_of_order_is_refused() -> None:
    with pytest.raises(StreamOrderError):
        _run(list(reversed(BILLED)), BILLED)


def test_a_ref_names_its_document() -> None:
    assert tax_document(tax_ref("", "2026-01", "inv:with:colons")) == "inv:with:colons"


class _ListsTax:
    """An ERP that lists its tax lines, in any order, a document's jurisdiction twice."""

    def tax_payable_rows(self, legal_entity: str, as_of: date) -> list[TaxAmount]:
        return [TaxAmount("inv_2", "DE", "2026-03", "USD", 1900),
                TaxAmount("inv_1", "US-NY", "2026-02", "USD", 300),
                TaxAmount("inv_1", "US-NY", "2026-01", "USD", 500)]


def test_an_erp_read_through_lists_tells_tax_only_if_it_lists_it() -> None:
    from finsync.recon.port_books import ListLedgerBooks, TaxNotReportedError
    from finsync.recon.service import _erp_tax

    telling = ListLedgerBooks(_ListsTax())  # type: ignore[arg-type]
    assert telling.tells_tax
    # Summed per (document, jurisdiction), the earliest month, by key: 5.00 + 3.00.
    assert list(telling.tax_payable("le_us", AS_OF)) == [
        TaxAmount("inv_1", "US-NY", "2026-01", "USD", 800),
        TaxAmount("inv_2", "DE", "2026-03", "USD", 1900)]
    assert _erp_tax(telling, "le_us", AS_OF) is not None
    silent = ListLedgerBooks(object())  # type: ignore[arg-type]
    assert not silent.tells_tax and _erp_tax(silent, "le_us", AS_OF) is None
    with pytest.raises(TaxNotReportedError):
        silent.tax_payable("le_us", AS_OF)


_ROWS = st.dictionaries(
    st.tuples(st.sampled_from(["cm_1", "inv_1", "inv_2", "inv_B", "inv_a"]),
              st.sampled_from(["", "DE", "US-NY", "US-NY-NYC"])),
    st.integers(-10_000, 10_000), max_size=12)


@given(billed=_ROWS, changes=_ROWS, moved=st.booleans())
def test_the_breaks_are_exactly_the_rows_that_differ(
        billed: dict[tuple[str, str], int], changes: dict[tuple[str, str], int],
        moved: bool) -> None:
    """The ERP holds billing's rows plus `changes` (a key only there is not_in_billing, a
    change to zero of a row billing has is not_in_erp); its month may differ throughout."""
    booked = dict(billed)
    for key, delta in changes.items():
        booked[key] = booked.get(key, 0) + delta
    month = "2026-02" if moved else "2026-01"

    def rows(amounts: dict[tuple[str, str], int], on: str) -> list[TaxAmount]:
        return [TaxAmount(d, j, on, "USD", a) for (d, j), a in sorted(amounts.items())]

    result = _run(rows(billed, "2026-01"), rows({k: a for k, a in booked.items() if a},
                                                month))
    differ = {k for k in billed.keys() | booked.keys()
              if billed.get(k, 0) != booked.get(k, 0)}
    assert {tax_document(i.ref) for i in result.breaks} == {d for d, _ in differ}
    assert len(result.breaks) == len(differ)
    assert result.variance.to_minor() == sum(abs(billed.get(k, 0) - booked.get(k, 0))
                                             for k in differ)


def test_tax_booked_in_another_currency_is_none_of_billings() -> None:
    result = _run([TaxAmount("inv_1", "DE", "2026-03", "USD", 1900)],
                  [TaxAmount("inv_1", "DE", "2026-03", "EUR", 1900)])
    assert _breaks(result) == [("tax:DE:2026-03:inv_1", "19.00", "0.00", "currency_differs",
                                None)]
    assert "tax:DE:2026-03:inv_1: billed in USD, booked in EUR (currency_differs)" \
        in result.notes
