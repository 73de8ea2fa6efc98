import uuid

from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.ids import _NAMESPACE, derive_id


@given(st.text(max_size=80).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
       st.lists(st.text(alphabet=st.characters(max_codepoint=0xD7FF), max_size=20), max_size=3))
def test_derived_id_is_the_uuid5_of_its_parts(first: str, more: list[str]) -> None:
    # The ids already stored were made by uuid.uuid5: the direct computation must match it.
    name = "\x1f".join([first, *more])
    assert derive_id("je", first, *more) == f"je_{uuid.uuid5(_NAMESPACE, name).hex}"


def test_derived_id_of_a_delivery_key() -> None:
    key = "evt_0f1e2d3c4b5a69788796a5b4c3d2e1f0:ledger"
    assert derive_id("je", key) == f"je_{uuid.uuid5(_NAMESPACE, key).hex}"
