"""`audit verify` against someone with SQL access to the database: edit, delete, insert or
swap any record of the trail with raw SQL, and verify names that record and what was done;
rewrite the chain or cut its end, and the signed checkpoint names it. On both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from finsync.audit import checkpoint, trail
from finsync.audit.chain import Entry, record_hash
from finsync.audit.signing import Keyring
from finsync.audit.tables import checkpoints
from finsync.audit.tables import trail as table
from finsync.audit.verify import Verdict, records, verify
from finsync.storage.db import reading, transaction

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
SIZE = 5
KEYS = Keyring.of(Ed25519PrivateKey.generate())


def _entry(n: int) -> Entry:
    return Entry("ar.clerk", "exception.resolve", "exception", str(n), f"paid by wire {n}",
                 before={"status": "open"}, after={"status": "resolved"},
                 correlation_id=f"corr-{n}")


def _fresh(engine: Engine, size: int = SIZE) -> None:
    """A trail of `size` records and nothing else."""
    with transaction(engine) as conn:
        conn.execute(delete(checkpoints))
        conn.execute(delete(table))
        for n in range(1, size + 1):
            trail.append(conn, _entry(n), T0 + timedelta(minutes=n))


def _verify(engine: Engine) -> Verdict:
    with reading(engine) as conn:
        return verify(conn, KEYS)


def _named(engine: Engine) -> tuple[str, int]:
    verdict = _verify(engine)
    assert not verdict.ok
    assert verdict.tamper is not None, verdict.as_json()
    return verdict.tamper.kind.value, verdict.tamper.seq


def _stored(conn: Connection, seq: int) -> dict[str, object]:
    return dict(next(iter(records(conn, after=seq - 1, limit=1))))


def _move(conn: Connection, where: str, by: int) -> None:
    """Renumber the records `where` by `by`, through negative seqs so that no primary key
    collides on the way (PostgreSQL checks it row by row)."""
    conn.execute(text(f"UPDATE audit_trail SET seq = -seq WHERE {where}"))
    conn.execute(text(f"UPDATE audit_trail SET seq = -seq + {by} WHERE seq < 0"))


def _tamper(engine: Engine, change: Callable[[Connection], object]) -> tuple[str, int]:
    with engine.begin() as conn:
        change(conn)
    return _named(engine)


def test_a_sound_trail_verifies(engine: Engine) -> None:
    _fresh(engine)
    verdict = _verify(engine)
    assert verdict.ok and verdict.records == SIZE and verdict.head_seq == SIZE
    assert verdict.unsigned_records == SIZE  # nothing signed yet


EDITS = {"actor": "someone.else", "reason": "nothing to see", "after": '{"status":"ignored"}',
         "at": T0 - timedelta(days=30)}


def test_editing_any_field_of_any_record_names_it(engine: Engine) -> None:
    for column, value in EDITS.items():
        for seq in range(1, SIZE + 1):
            _fresh(engine)
            def edit(conn: Connection, seq: int = seq, column: str = column,
                     value: object = value) -> None:
                conn.execute(update(table).where(table.c.seq == seq).values({column: value}))
            assert _tamper(engine, edit) == ("edited", seq), column


def test_an_edit_with_its_hash_recomputed_names_the_edited_record(engine: Engine) -> None:
    for seq in range(1, SIZE):  # the last one, rehashed, is an append: see the checkpoint test
        _fresh(engine)

        def rehash(conn: Connection, seq: int = seq) -> None:
            forged = {**_stored(conn, seq), "actor": "someone.else"}
            conn.execute(update(table).where(table.c.seq == seq).values(
                actor="someone.else", hash=record_hash(forged)))
        assert _tamper(engine, rehash) == ("edited", seq)


def test_deleting_any_record_names_it(engine: Engine) -> None:
    for seq in range(1, SIZE):  # deleting the last one: see the checkpoint test
        _fresh(engine)
        assert _tamper(engine, lambda c, s=seq: c.execute(  # type: ignore[misc]
            delete(table).where(table.c.seq == s))) == ("deleted", seq)


def test_deleting_a_record_and_renumbering_the_rest_names_it(engine: Engine) -> None:
    for seq in range(1, SIZE):
        _fresh(engine)

        def cut(conn: Connection, seq: int = seq) -> None:
            conn.execute(delete(table).where(table.c.seq == seq))
            _move(conn, f"seq > {seq}", -1)
        assert _tamper(engine, cut) == ("deleted", seq)


def _forged(conn: Connection, seq: int, *, linked: bool, hashed: bool) -> dict[str, object]:
    """A record for seq `seq` by someone who writes SQL: linked to the record before (or
    not), with its hash computed by the published rule (or made up)."""
    before = _stored(conn, seq - 1)["hash"] if seq > 1 else "0" * 64
    forged: dict[str, object] = {
        "seq": seq, "at": "2026-12-01T09:00:30.000000Z", "actor": "mallory",
        "action": "exception.ignore", "object_type": "exception", "object_id": "99",
        "before": None, "after": '{"status":"ignored"}', "reason": "written off",
        "correlation_id": None, "prev_hash": before if linked else "f" * 64}
    forged["hash"] = record_hash(forged) if hashed else "e" * 64
    return {**forged, "at": T0 + timedelta(seconds=30)}


def test_inserting_a_record_anywhere_names_it(engine: Engine) -> None:
    for linked, hashed in ((True, True), (True, False), (False, False)):
        for seq in range(1, SIZE + 1):  # before record `seq`, the later ones renumbered
            _fresh(engine)

            def slip_in(conn: Connection, seq: int = seq, linked: bool = linked,
                        hashed: bool = hashed) -> None:
                _move(conn, f"seq >= {seq}", 1)
                conn.execute(insert(table).values(_forged(conn, seq, linked=linked,
                                                          hashed=hashed)))
            assert _tamper(engine, slip_in) == ("inserted", seq), (linked, hashed)


def test_appending_a_copy_of_any_record_names_the_copy(engine: Engine) -> None:
    for copied in range(1, SIZE + 1):
        _fresh(engine)

        def copy(conn: Connection, copied: int = copied) -> None:
            conn.execute(insert(table).values({**_original(conn, copied), "seq": SIZE + 1}))
        assert _tamper(engine, copy) == ("inserted", SIZE + 1)


def _original(conn: Connection, seq: int) -> dict[str, object]:
    return dict(conn.execute(select(table).where(table.c.seq == seq)).mappings().one())


def test_appending_a_made_up_record_names_it(engine: Engine) -> None:
    _fresh(engine)
    assert _tamper(engine, lambda c: c.execute(insert(table).values(
        _forged(c, SIZE + 1, linked=False, hashed=False)))) == ("inserted", SIZE + 1)


def test_swapping_any_two_records_names_the_first(engine: Engine) -> None:
    for first in range(1, SIZE + 1):
        for second in range(first + 1, SIZE + 1):
            _fresh(engine)

            def swap(conn: Connection, a: int = first, b: int = second) -> None:
                conn.execute(update(table).where(table.c.seq == a).values(seq=-1))
                conn.execute(update(table).where(table.c.seq == b).values(seq=a))
                conn.execute(update(table).where(table.c.seq == -1).values(seq=b))
            assert _tamper(engine, swap) == ("reordered", first), (first, second)


def _sign(engine: Engine, keys: Keyring = KEYS) -> checkpoint.Checkpoint:
    return checkpoint.sign(engine, keys, "daily", T0 + timedelta(hours=1))


def test_a_signed_head_verifies_and_counts_what_came_after(engine: Engine) -> None:
    _fresh(engine)
    signed = _sign(engine)
    assert (signed.seq, signed.hash) == (SIZE, _verify(engine).head_hash)
    with transaction(engine) as conn:
        trail.append(conn, _entry(9), T0 + timedelta(hours=2))
    verdict = _verify(engine)
    assert verdict.ok and verdict.unsigned_records == 1
    assert verdict.as_json()["last_checkpoint"]["seq"] == SIZE


def test_deleting_the_last_records_is_named_by_the_checkpoint(engine: Engine) -> None:
    _fresh(engine)
    _sign(engine)
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.seq >= SIZE - 1))
    verdict = _verify(engine)
    assert verdict.tamper is None and not verdict.ok
    [problem] = verdict.checkpoint_problems
    assert (problem.kind, problem.seq) == ("truncated", SIZE - 1)


def test_emptying_a_signed_trail_is_named(engine: Engine) -> None:
    _fresh(engine)
    _sign(engine)
    with engine.begin() as conn:
        conn.execute(delete(table))
    [problem] = _verify(engine).checkpoint_problems
    assert (problem.kind, problem.seq) == ("truncated", 1)


def test_rewriting_the_whole_chain_is_named_by_the_checkpoint(engine: Engine) -> None:
    """Edit record 2 and recompute every hash after it: the chain is sound again, but the
    signed head is not the trail's any more."""
    _fresh(engine)
    _sign(engine)
    with engine.begin() as conn:
        previous = _stored(conn, 1)["hash"]
        for seq in range(2, SIZE + 1):
            row = {**_stored(conn, seq), "prev_hash": previous}
            if seq == 2:
                row["actor"] = "someone.else"
            row["hash"] = record_hash(row)
            conn.execute(update(table).where(table.c.seq == seq).values(
                actor=row["actor"], prev_hash=row["prev_hash"], hash=row["hash"]))
            previous = row["hash"]
    verdict = _verify(engine)
    assert verdict.tamper is None
    [problem] = verdict.checkpoint_problems
    assert (problem.kind, problem.seq) == ("rewritten", SIZE)


def test_a_checkpoint_signed_with_another_key_fails(engine: Engine) -> None:
    _fresh(engine)
    _sign(engine, Keyring.of(Ed25519PrivateKey.generate()))
    [problem] = _verify(engine).checkpoint_problems
    assert problem.kind == "bad_signature"


def test_an_edited_checkpoint_fails_its_signature(engine: Engine) -> None:
    _fresh(engine)
    _sign(engine)
    with engine.begin() as conn:
        conn.execute(update(checkpoints).values(seq=SIZE - 1,
                                                hash=_stored(conn, SIZE - 1)["hash"]))
    [problem] = _verify(engine).checkpoint_problems
    assert problem.kind == "bad_signature"


def test_without_a_trusted_key_a_checkpoint_cannot_pass(engine: Engine) -> None:
    _fresh(engine)
    _sign(engine)
    with reading(engine) as conn:
        verdict = verify(conn, Keyring.of(None))
    assert [p.kind for p in verdict.checkpoint_problems] == ["bad_signature"]
    assert "no public key is configured" in verdict.checkpoint_problems[0].message


def test_an_empty_trail_can_be_signed_and_verifies(engine: Engine) -> None:
    _fresh(engine, size=0)
    signed = _sign(engine)
    assert (signed.seq, signed.hash) == (0, "0" * 64)
    assert _verify(engine).ok


def test_moving_any_record_past_the_end_names_it(engine: Engine) -> None:
    for seq in range(1, SIZE):
        _fresh(engine)
        assert _tamper(engine, lambda c, s=seq: c.execute(  # type: ignore[misc]
            update(table).where(table.c.seq == s).values(seq=SIZE + 10))) == ("reordered", seq)


def test_verify_reads_one_snapshot(engine: Engine) -> None:
    """A record and a checkpoint committed while verify reads are not seen half: the
    snapshot read sees neither (else the checkpoint would name a record not read yet)."""
    _fresh(engine)
    with reading(engine, snapshot=True) as conn:
        seen = len(list(records(conn)))
        with transaction(engine) as other:
            trail.append(other, _entry(9), T0 + timedelta(hours=2))
        _sign(engine)
        verdict = verify(conn, KEYS)
    assert seen == SIZE
    assert verdict.ok and (verdict.records, verdict.checkpoints) == (SIZE, ())
