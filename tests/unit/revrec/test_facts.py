"""Default modification facts derived from an amendment (systems/revrec/facts.py)."""

from __future__ import annotations

from datetime import date

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.contract import ContractAmendment, ContractLine
from finsync.systems.revrec import RecognitionPattern, RecognitionTerms
from finsync.systems.revrec.facts import derive_facts
from tests.unit.revrec.builders import contract, line, ssp, usd

ON = date(2026, 5, 16)
RATABLE = RecognitionTerms()
SSPS = (ssp("prod_seat", "120.00"), ssp("prod_analytics", "24000.00"))


def _amend(*lines: ContractLine) -> ContractAmendment:
    new = contract(*lines, version=2)
    return ContractAmendment("amd_1", new.id, 2, ON, "upsell", (), new)


def _facts(*after: ContractLine, ssps: tuple[StandaloneSellingPrice, ...] = SSPS,
           terms: RecognitionTerms = RATABLE) -> tuple[bool, bool, frozenset[str]]:
    before = contract(line("ln_s", 500, "120.00", "prod_seat"))
    facts = derive_facts(before, _amend(*after), ssps, terms)
    return (facts.added_goods_distinct, facts.priced_at_standalone_selling_price,
            facts.remaining_not_distinct)


def test_facts_additions_at_ssp_are_priced_at_ssp() -> None:
    assert _facts(line("ln_s", 800, "120.00", "prod_seat"),
                  line("ln_a", 1, "24000.00", "prod_analytics", start=ON)) == \
        (True, True, frozenset())


def test_facts_addition_below_ssp_is_not_priced_at_ssp() -> None:
    assert _facts(line("ln_s", 800, "120.00", "prod_seat"),
                  line("ln_a", 1, "20000.00", "prod_analytics", start=ON))[1] is False


def test_facts_addition_within_the_ssp_range_is_priced_at_ssp() -> None:
    ranged = (StandaloneSellingPrice("prod_seat", usd("120.00"), date(2000, 1, 1),
                                     low=usd("100.00"), high=usd("130.00")),)
    assert _facts(line("ln_s", 800, "120.00", "prod_seat"),
                  line("ln_x", 10, "105.00", "prod_seat", start=ON), ssps=ranged)[1] is True


def test_facts_price_change_of_existing_units_is_not_priced_at_ssp() -> None:
    assert _facts(line("ln_s", 500, "110.00", "prod_seat"))[1] is False


def test_facts_addition_without_an_ssp_is_not_priced_at_ssp() -> None:
    assert _facts(line("ln_s", 500, "120.00", "prod_seat"),
                  line("ln_n", 1, "5.00", "prod_new", start=ON))[1] is False


def test_facts_progress_obligations_are_not_distinct() -> None:
    terms = RecognitionTerms((("prod_seat", RecognitionPattern.PROGRESS),))
    assert _facts(line("ln_s", 500, "130.00", "prod_seat"), terms=terms)[2] == \
        frozenset({"ln_s"})
