"""Two-person requests: a change that takes effect only once a second principal approves.

Rules:
- A request names what would change (`kind`, `subject`, `params`), who asked and why, the
  scopes its approver must hold (`needs`), and until when it may be approved (`expires_at`).
  One request of a kind and subject waits at a time.
- The approver is another person: principal ids are normalised where they enter
  (`Principal.of`), so `ar.clerk` and `AR.CLERK` are one person and may not approve each
  other. The approver must hold every scope the request needs.
- A pending request past `expires_at` expires (`expire_due`); it can then be neither
  approved nor rejected: ask again.
- Approving carries the change out in the same transaction as the decision (`decide`'s
  `carry_out`), so an approved change that fails is not approved. Every request, decision
  and expiry is a record of the audit trail, in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, insert, select, update

from finsync.audit import trail
from finsync.audit.chain import Entry, canonical
from finsync.auth.local import ForbiddenError
from finsync.auth.principal import Principal
from finsync.controls import tables as t
from finsync.domain.errors import DomainError
from finsync.storage.db import reading, transaction

EXPIRER = "system:controls"
LISTED_MAX = 500


class RequestStatus(StrEnum):
    """Values are stored in `controls_requests.status` (16 characters at most)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ControlError(DomainError):
    code = "control_refused"


class UnknownRequestError(ControlError):
    code = "unknown_request"


class NotPendingError(ControlError):
    code = "request_not_pending"


class ApprovalExpiredError(ControlError):
    code = "approval_expired"


class AlreadyRequestedError(ControlError):
    code = "already_requested"


class SamePersonError(ControlError):
    """Segregation of duties: the approver is the person who asked (`same_person`, the code
    the exception queue uses for the same refusal)."""

    code = "same_person"


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    kind: str
    subject: str
    params: dict[str, Any]
    needs: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    status: RequestStatus
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "subject": self.subject,
                "params": self.params, "needs": list(self.needs), "reason": self.reason,
                "requested_by": self.requested_by,
                "requested_at": self.requested_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "status": self.status.value,
                "decided_by": self.decided_by,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
                "decision_note": self.decision_note}


# What approving carries out, in the decision's transaction.
CarryOut = Callable[[Connection, Request], None]


class TwoPerson:
    """The request store on one database, with one clock and one time to live."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], ttl: timedelta) -> None:
        self._engine, self._clock, self._ttl = engine, clock, ttl

    def request(self, principal: Principal, kind: str, subject: str,
                params: Mapping[str, Any], needs: tuple[str, ...], reason: str,
                *, also: CarryOut | None = None) -> Request:
        """Open a request; `also` records more in its transaction (a proposal's own audit
        record)."""
        if not reason.strip():
            raise ControlError("a request needs a reason (it is audited)")
        self.expire_due()
        now = self._clock()
        with transaction(self._engine) as conn:
            waiting = conn.execute(select(t.requests.c.id).where(
                t.requests.c.kind == kind, t.requests.c.subject == subject,
                t.requests.c.status == RequestStatus.PENDING)).scalar()
            if waiting is not None:
                raise AlreadyRequestedError(f"request {waiting} for {kind} {subject} is "
                                            "already waiting for approval")
            row = {"kind": kind, "subject": subject, "params": canonical(dict(params)),
                   "needs": " ".join(needs), "reason": reason,
                   "requested_by": principal.id, "requested_at": now,
                   "expires_at": now + self._ttl, "status": RequestStatus.PENDING.value}
            request_id = int(conn.execute(insert(t.requests).values(row)
                                          .returning(t.requests.c.id)).scalar_one())
            opened = _get(conn, request_id)
            assert opened is not None
            trail.append(conn, Entry(principal.id, "approval.request", "approval",
                                     str(request_id), reason,
                                     after={"kind": kind, "subject": subject,
                                            "status": RequestStatus.PENDING.value,
                                            "needs": list(needs),
                                            "expires_at": opened.expires_at.isoformat()}),
                         now)
            if also is not None:
                also(conn, opened)
        return opened

    def decide(self, request_id: int, principal: Principal, note: str, *, approve: bool,
               kind: str | None = None, carry_out: CarryOut | None = None) -> Request:
        """Approve (and carry out) or reject a pending request of another person."""
        if not note.strip():
            raise ControlError("a decision needs a note (it is audited)")
        self.expire_due()
        now = self._clock()
        with transaction(self._engine) as conn:
            pending = self._pending(conn, request_id, kind)
            if principal.same_person(pending.requested_by):
                raise SamePersonError(f"{principal.id} asked for request {request_id}; a "
                                      "different person must decide")
            missing = [s for s in pending.needs if not principal.can(s)]
            if missing:
                raise ForbiddenError(f"{principal.id} lacks {', '.join(missing)} to decide "
                                     f"request {request_id}")
            status = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
            conn.execute(update(t.requests).where(t.requests.c.id == request_id).values(
                status=status.value, decided_by=principal.id, decided_at=now,
                decision_note=note))
            decided = _get(conn, request_id)
            assert decided is not None
            trail.append(conn, Entry(principal.id, f"approval.{'approve' if approve else 'reject'}",
                                     "approval", str(request_id), note,
                                     before={"status": RequestStatus.PENDING.value},
                                     after={"status": status.value, "kind": pending.kind,
                                            "subject": pending.subject,
                                            "requested_by": pending.requested_by}),
                         now)
            if approve and carry_out is not None:
                carry_out(conn, decided)
        return decided

    def expire_due(self) -> list[Request]:
        """Expire every pending request past its time, each with its audit record."""
        now = self._clock()
        with transaction(self._engine) as conn:
            due = [_request(r) for r in conn.execute(select(t.requests).where(
                t.requests.c.status == RequestStatus.PENDING,
                t.requests.c.expires_at <= now)).mappings()]
            for request in due:
                conn.execute(update(t.requests).where(t.requests.c.id == request.id)
                             .values(status=RequestStatus.EXPIRED.value, decided_at=now))
                trail.append(conn, Entry(EXPIRER, "approval.expire", "approval",
                                         str(request.id),
                                         f"not decided by {request.expires_at.isoformat()}",
                                         before={"status": RequestStatus.PENDING.value},
                                         after={"status": RequestStatus.EXPIRED.value,
                                                "kind": request.kind,
                                                "subject": request.subject}), now)
        return due

    def listing(self, *, kind: str | None = None,
                status: RequestStatus | None = RequestStatus.PENDING) -> list[Request]:
        """Requests (pending by default, the oldest first), after expiring what is due."""
        self.expire_due()
        query = select(t.requests).order_by(t.requests.c.id).limit(LISTED_MAX)
        if kind is not None:
            query = query.where(t.requests.c.kind == kind)
        if status is not None:
            query = query.where(t.requests.c.status == status.value)
        with reading(self._engine) as conn:
            return [_request(r) for r in conn.execute(query).mappings()]

    def waiting(self, *, kind: str | None = None) -> list[Request]:
        """The pending requests not past their time, the oldest first, read without writing
        (a page that shows them changes nothing; `listing` records the expiries)."""
        query = (select(t.requests).where(t.requests.c.status == RequestStatus.PENDING,
                                          t.requests.c.expires_at > self._clock())
                 .order_by(t.requests.c.id).limit(LISTED_MAX))
        if kind is not None:
            query = query.where(t.requests.c.kind == kind)
        with reading(self._engine) as conn:
            return [_request(r) for r in conn.execute(query).mappings()]

    def get(self, request_id: int) -> Request:
        with reading(self._engine) as conn:
            found = _get(conn, request_id)
        if found is None:
            raise UnknownRequestError(f"no request {request_id}")
        return found

    @staticmethod
    def _pending(conn: Connection, request_id: int, kind: str | None) -> Request:
        found = _get(conn, request_id)
        if found is None or (kind is not None and found.kind != kind):
            raise UnknownRequestError(f"no {kind or ''} request {request_id}".replace("  ", " "))
        if found.status is RequestStatus.EXPIRED:
            raise ApprovalExpiredError(f"request {request_id} expired at "
                                       f"{found.expires_at.isoformat()} without a decision; "
                                       "ask again")
        if found.status is not RequestStatus.PENDING:
            raise NotPendingError(f"request {request_id} is already {found.status.value} "
                                  f"(by {found.decided_by})")
        return found


def _get(conn: Connection, request_id: int) -> Request | None:
    row = conn.execute(select(t.requests).where(t.requests.c.id == request_id)).mappings().first()
    return None if row is None else _request(row)


def _request(row: RowMapping) -> Request:
    return Request(int(row["id"]), row["kind"], row["subject"], json.loads(row["params"]),
                   tuple(row["needs"].split()), row["reason"], row["requested_by"],
                   row["requested_at"], row["expires_at"], RequestStatus(row["status"]),
                   row["decided_by"], row["decided_at"], row["decision_note"])
