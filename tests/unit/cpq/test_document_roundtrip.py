"""Writer beside reader: `document.translate(document.encode(x))` gives `x` back, for any
commercial contract or customer the domain allows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.cpq import document
from finsync.connectors.cpq.document import DocumentSettings
from finsync.domain.commercial import CommercialContract
from finsync.domain.party import CustomerAccount
from tests.strategies import commercial_contracts, customers
from tests.unit.cpq.cpqkit import APPROVED_AT


@given(st.one_of(commercial_contracts(), customers()))
def test_translate_reads_back_every_document_encode_writes(
        value: CommercialContract | CustomerAccount) -> None:
    (draft,) = document.translate(DocumentSettings(), "crm", document.encode(value, APPROVED_AT))
    assert draft.event.document == value
