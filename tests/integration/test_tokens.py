"""API tokens: shown once and stored as a hash, rotation with an overlap, revocation at once,
admin tokens approved by a second admin (never the same person, whatever the letter case),
and every change in the audit trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

from finsync.audit.tables import trail
from finsync.auth import tokens
from finsync.auth.local import ForbiddenError, NotAuthenticatedError
from finsync.auth.principal import ADMIN, FINANCE_READ, Principal, ScopeError, events_write
from finsync.auth.tables import metadata
from finsync.auth.tables import tokens as table
from finsync.storage.db import reading

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
ALICE = Principal.of("alice", [ADMIN])
BOB = Principal.of("bob", [ADMIN])
CLERK = Principal.of("ar.clerk", [FINANCE_READ])
HOUR = timedelta(hours=1)


def _trail(engine: Engine) -> list[dict[str, object]]:
    with reading(engine) as conn:
        return [dict(r) for r in conn.execute(select(trail).order_by(trail.c.seq)).mappings()]


def test_migrations_produce_exactly_the_declared_schema(engine: Engine) -> None:
    ours = set(metadata.tables)

    def included(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in ours  # the hub's and the audit's have their own

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": included})
        assert compare_metadata(context, metadata) == []


def test_a_token_is_shown_once_and_stored_only_as_its_hash(engine: Engine) -> None:
    issued = tokens.create(engine, ALICE, "billing intake", " Billing.System ",
                           [events_write("billing")], NOW)
    secret = issued.secret
    assert secret.startswith("fsk_") and len(secret) == 4 + 43 and secret[4:].isalnum()
    assert issued.token.principal == "billing.system"  # normalised where it enters
    with reading(engine) as conn:
        dumped = json.dumps([list(map(str, r)) for r in conn.execute(select(table))])
        audited = json.dumps([list(map(str, r)) for r in conn.execute(select(trail))])
    assert secret not in dumped and secret[4:] not in dumped
    assert secret not in audited and secret[4:] not in audited
    assert tokens.digest(secret) in dumped
    principal = tokens.principal_for(engine, secret, NOW)
    assert principal == Principal.of("billing.system", [events_write("billing")])
    assert tokens.create(engine, ALICE, "again", "x", [FINANCE_READ], NOW).secret != secret


def test_last_use_is_recorded_at_most_once_a_minute(engine: Engine) -> None:
    issued = tokens.create(engine, ALICE, "reader", "reporting", [FINANCE_READ], NOW)
    [listed] = tokens.listing(engine)
    assert listed.last_used_at is None
    tokens.principal_for(engine, issued.secret, NOW)
    tokens.principal_for(engine, issued.secret, NOW + timedelta(seconds=30))
    [listed] = tokens.listing(engine)
    assert listed.last_used_at == NOW
    tokens.principal_for(engine, issued.secret, NOW + timedelta(minutes=2))
    [listed] = tokens.listing(engine)
    assert listed.last_used_at == NOW + timedelta(minutes=2)


def test_a_token_expires(engine: Engine) -> None:
    issued = tokens.create(engine, ALICE, "short", "reporting", [FINANCE_READ], NOW,
                           lifetime=HOUR)
    assert tokens.principal_for(engine, issued.secret, NOW + HOUR - timedelta(seconds=1))
    with pytest.raises(NotAuthenticatedError, match="expired"):
        tokens.principal_for(engine, issued.secret, NOW + HOUR)
    assert tokens.listing(engine)[0].expires_at == NOW + HOUR


def test_rotation_keeps_the_old_token_for_the_overlap_only(engine: Engine) -> None:
    old = tokens.create(engine, ALICE, "billing", "billing.system",
                        [events_write("billing")], NOW, lifetime=timedelta(days=90))
    rotated_at = NOW + timedelta(days=10)
    new = tokens.rotate(engine, BOB, old.token.id, rotated_at, overlap=timedelta(hours=24))
    assert new.secret != old.secret
    assert (new.token.principal, new.token.scopes) == (old.token.principal, old.token.scopes)
    assert new.token.expires_at == rotated_at + timedelta(days=90)  # the same lifetime
    inside = rotated_at + timedelta(hours=24) - timedelta(seconds=1)
    after = rotated_at + timedelta(hours=24)
    for at in (rotated_at, inside):
        assert tokens.principal_for(engine, old.secret, at).id == "billing.system"
    with pytest.raises(NotAuthenticatedError, match="expired"):
        tokens.principal_for(engine, old.secret, after)
    for at in (rotated_at, inside, after, rotated_at + timedelta(days=90, seconds=-1)):
        assert tokens.principal_for(engine, new.secret, at).id == "billing.system"
    with pytest.raises(tokens.TokenStateError, match="rotated to"):
        tokens.rotate(engine, BOB, old.token.id, inside, overlap=HOUR)
    actions = [(r["action"], r["object_id"]) for r in _trail(engine)]
    assert actions == [("token.create", old.token.id), ("token.rotate", old.token.id),
                       ("token.create", new.token.id)]


def test_the_overlap_never_extends_the_old_tokens_life(engine: Engine) -> None:
    old = tokens.create(engine, ALICE, "b", "billing.system", [FINANCE_READ], NOW,
                        lifetime=HOUR)
    tokens.rotate(engine, ALICE, old.token.id, NOW, overlap=timedelta(days=7))
    with pytest.raises(NotAuthenticatedError):
        tokens.principal_for(engine, old.secret, NOW + HOUR)


def test_revocation_takes_effect_at_once(engine: Engine) -> None:
    issued = tokens.create(engine, ALICE, "reader", "reporting", [FINANCE_READ], NOW)
    assert tokens.principal_for(engine, issued.secret, NOW).id == "reporting"
    revoked = tokens.revoke(engine, BOB, issued.token.id, NOW, "laptop lost")
    assert revoked.state(NOW) == "revoked"
    with pytest.raises(NotAuthenticatedError, match="revoked"):
        tokens.principal_for(engine, issued.secret, NOW)
    with pytest.raises(tokens.TokenStateError):
        tokens.rotate(engine, ALICE, issued.token.id, NOW, HOUR)
    with pytest.raises(tokens.TokenStateError):
        tokens.revoke(engine, ALICE, issued.token.id, NOW)
    record = _trail(engine)[-1]
    assert (record["actor"], record["action"], record["reason"]) == (
        "bob", "token.revoke", "laptop lost")
    assert json.loads(str(record["before"]))["state"] == "active"
    assert json.loads(str(record["after"]))["state"] == "revoked"


def test_only_an_admin_changes_tokens(engine: Engine) -> None:
    issued = tokens.create(engine, ALICE, "reader", "reporting", [FINANCE_READ], NOW)
    with pytest.raises(ForbiddenError):
        tokens.create(engine, CLERK, "mine", "ar.clerk", [FINANCE_READ], NOW)
    with pytest.raises(ForbiddenError):
        tokens.revoke(engine, CLERK, issued.token.id, NOW)
    with pytest.raises(ForbiddenError):
        tokens.rotate(engine, CLERK, issued.token.id, NOW, HOUR)
    with pytest.raises(ScopeError):
        tokens.create(engine, ALICE, "typo", "reporting", ["finance:reed"], NOW)
    with pytest.raises(tokens.TokenError):
        tokens.create(engine, ALICE, "none", "reporting", [], NOW)
    with pytest.raises(tokens.UnknownTokenError):
        tokens.revoke(engine, ALICE, "tok_nothing", NOW)
    assert len(tokens.listing(engine)) == 1


@pytest.mark.parametrize("approver", ["alice", "ALICE", " Alice ", "ops.ADMIN"])
def test_an_admin_token_is_not_approved_by_its_requester_or_owner(
        engine: Engine, approver: str) -> None:
    """The same person, whatever the letter case or spacing: the requester (alice) or the
    principal the token is for (ops.admin)."""
    pending = tokens.create(engine, ALICE, "ops", "ops.admin", [ADMIN], NOW)
    assert pending.token.state(NOW) == "pending"
    with pytest.raises(NotAuthenticatedError, match="pending"):
        tokens.principal_for(engine, pending.secret, NOW)
    same = Principal.of(approver, [ADMIN])
    with pytest.raises(tokens.SamePersonError) as refused:
        tokens.approve(engine, same, pending.token.id, NOW)
    assert refused.value.code == "same_person"
    with pytest.raises(NotAuthenticatedError):
        tokens.principal_for(engine, pending.secret, NOW)
    assert [r["action"] for r in _trail(engine)] == ["token.create"]


def test_an_admin_token_works_once_a_second_admin_approves(engine: Engine) -> None:
    pending = tokens.create(engine, ALICE, "ops", "ops.admin", [ADMIN, FINANCE_READ], NOW)
    with pytest.raises(ForbiddenError):  # approving needs the admin scope
        tokens.approve(engine, CLERK, pending.token.id, NOW)
    approved = tokens.approve(engine, BOB, pending.token.id, NOW + HOUR)
    assert (approved.state(NOW + HOUR), approved.approved_by) == ("active", "bob")
    assert tokens.principal_for(engine, pending.secret, NOW + HOUR).can(ADMIN)
    with pytest.raises(tokens.TokenStateError):
        tokens.approve(engine, BOB, pending.token.id, NOW + HOUR)
    assert [(r["actor"], r["action"]) for r in _trail(engine)] == [
        ("alice", "token.create"), ("bob", "token.approve")]


def test_a_pending_admin_token_expires_unapproved(engine: Engine) -> None:
    pending = tokens.create(engine, ALICE, "ops", "ops.admin", [ADMIN], NOW)
    late = NOW + tokens.APPROVAL_WINDOW
    with pytest.raises(tokens.TokenStateError, match="approval_expired"):
        tokens.approve(engine, BOB, pending.token.id, late)
    assert tokens.listing(engine)[0].state(late) == "approval_expired"
    with pytest.raises(NotAuthenticatedError):
        tokens.principal_for(engine, pending.secret, late)


def test_a_hash_edited_in_the_database_matches_nothing(engine: Engine) -> None:
    """The stored hash is what authenticates: there is no other copy of the secret."""
    issued = tokens.create(engine, ALICE, "reader", "reporting", [FINANCE_READ], NOW)
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_tokens SET secret_hash = :h"), {"h": "0" * 64})
    with pytest.raises(NotAuthenticatedError, match="unknown"):
        tokens.principal_for(engine, issued.secret, NOW)


def test_two_admins_rotating_at_once_leave_one_successor(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second rotation read the token before the first committed (as it can on
    PostgreSQL): its conditional update finds the token already rotated, and its
    transaction, successor included, rolls back."""
    old = tokens.create(engine, ALICE, "billing", "billing.system", [FINANCE_READ], NOW)
    stale = old.token
    tokens.rotate(engine, ALICE, old.token.id, NOW, HOUR)
    reads = iter([stale])
    real_get = tokens._get
    monkeypatch.setattr(tokens, "_get", lambda conn, token_id: next(reads, None)
                        or real_get(conn, token_id))
    with pytest.raises(tokens.TokenStateError, match="changed meanwhile"):
        tokens.rotate(engine, BOB, old.token.id, NOW, HOUR)
    monkeypatch.undo()
    assert len(tokens.listing(engine)) == 2
    assert [r["action"] for r in _trail(engine)] == ["token.create", "token.rotate",
                                                    "token.create"]
