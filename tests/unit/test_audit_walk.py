"""The chain walk, pure: on trails of any length, one edit, deletion, insertion or swap at
any place is named by its seq and kind; an untouched trail has no break."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.audit.chain import GENESIS, record_hash
from finsync.audit.walk import MOVE_WINDOW, Tamper, first_break


def _trail(size: int) -> list[dict[str, Any]]:
    records = []
    previous = GENESIS
    for seq in range(1, size + 1):
        record: dict[str, Any] = {
            "seq": seq, "at": f"2026-12-01T09:00:{seq % 60:02d}.000000Z", "actor": "ar.clerk",
            "action": "exception.resolve", "object_type": "exception", "object_id": str(seq),
            "before": '{"status":"open"}', "after": '{"status":"resolved"}',
            "reason": f"reason {seq}", "correlation_id": None, "prev_hash": previous}
        record["hash"] = previous = record_hash(record)
        records.append(record)
    return records


def _renumbered(records: list[dict[str, Any]], start: int, by: int) -> list[dict[str, Any]]:
    """Seqs from index `start` on moved by `by`, as an UPDATE ... SET seq = seq + by does."""
    return records[:start] + [{**r, "seq": r["seq"] + by} for r in records[start:]]


sizes = st.integers(min_value=2, max_value=40)


@given(sizes)
def test_an_untouched_trail_has_no_break(size: int) -> None:
    assert first_break(_trail(size)) is None


@settings(max_examples=60)
@given(sizes, st.data(), st.sampled_from(["actor", "reason", "before", "prev_hash", "at"]))
def test_an_edit_anywhere_is_named(size: int, data: st.DataObject, field: str) -> None:
    records = _trail(size)
    at = data.draw(st.integers(min_value=0, max_value=size - 1))
    records[at] = {**records[at], field: "x" * 64 if field == "prev_hash" else "changed"}
    found = first_break(records)
    assert found is not None
    expected = Tamper.INSERTED if field == "prev_hash" and at == size - 1 else Tamper.EDITED
    assert (found.kind, found.seq) == (expected, at + 1)


@settings(max_examples=60)
@given(sizes, st.data(), st.booleans())
def test_a_deletion_before_the_end_is_named(size: int, data: st.DataObject,
                                            renumber: bool) -> None:
    records = _trail(size)
    at = data.draw(st.integers(min_value=0, max_value=size - 2))
    del records[at]
    if renumber:
        records = _renumbered(records, at, -1)
    found = first_break(records)
    assert found is not None and (found.kind, found.seq) == (Tamper.DELETED, at + 1)


@settings(max_examples=60)
@given(sizes, st.data(), st.booleans())
def test_an_insertion_anywhere_is_named(size: int, data: st.DataObject, linked: bool) -> None:
    records = _trail(size)
    at = data.draw(st.integers(min_value=0, max_value=size))
    previous = records[at - 1]["hash"] if at else GENESIS
    forged: dict[str, Any] = {**records[0], "seq": at + 1, "actor": "mallory",
                              "prev_hash": previous if linked else "f" * 64}
    forged["hash"] = record_hash(forged)
    records = _renumbered(records, at, 1)
    records.insert(at, forged)
    found = first_break(records)
    if linked and at == size:
        assert found is None  # an append by the published rule: only a checkpoint tells
        return
    assert found is not None
    if at == size:  # self-consistent, linked to nothing, at the end: or an edit, rehashed
        assert (found.kind, found.seq) == (Tamper.EDITED, at)
        assert found.message.endswith(f"(or record {at + 1} was inserted)")
        return
    assert (found.kind, found.seq) == (Tamper.INSERTED, at + 1)


@settings(max_examples=60)
@given(st.integers(min_value=2, max_value=MOVE_WINDOW), st.data())
def test_a_swap_of_any_two_records_is_named(size: int, data: st.DataObject) -> None:
    records = _trail(size)
    first = data.draw(st.integers(min_value=0, max_value=size - 2))
    second = data.draw(st.integers(min_value=first + 1, max_value=size - 1))
    a, b = records[first], records[second]
    records[first], records[second] = {**b, "seq": a["seq"]}, {**a, "seq": b["seq"]}
    found = first_break(records)
    assert found is not None and (found.kind, found.seq) == (Tamper.REORDERED, first + 1)
