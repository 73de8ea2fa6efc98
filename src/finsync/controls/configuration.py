"""Controlled configuration: approval thresholds, routes and the ownership map change only
with a second principal's approval.

Rules:
- The controlled sections are `[ownership]`, `[routes]` and `[triage]`; their fingerprint is
  SHA-256 over their canonical JSON, so a change of any value (not of comments or layout)
  changes it.
- The database keeps the fingerprints in force, in order (`controls_config`). The first
  configuration a database sees is adopted as it is (by `system:controls`, audited): there is
  nothing before it to compare with, and `finsync init` writes it.
- Any other fingerprint is refused where the configuration is used (`serve`, `run`, the
  pipeline, period close, the exception queue's actions: `config_not_approved`) until a
  principal with `admin` proposes it (`finsync config propose`) and a different principal
  with `admin` and `exceptions:approve` approves it (`finsync config approve ID`).
- Proposal, approval and adoption are records of the audit trail (`config.propose`,
  `config.approve`, `config.adopt`; object `config` `<fingerprint>`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from finsync.audit import trail
from finsync.audit.chain import Entry, canonical
from finsync.auth.local import require
from finsync.auth.principal import ADMIN, EXCEPTIONS_APPROVE, Principal
from finsync.config import ConfigError, FinsyncConfig
from finsync.controls import tables as t
from finsync.controls.request import ControlError, Request, TwoPerson
from finsync.storage.db import reading, serialize, transaction

CHANGE = "config.change"
CONTROLLED = ("ownership", "routes", "triage")
APPROVER_NEEDS = (ADMIN, EXCEPTIONS_APPROVE)
ADOPTER = "system:controls"
LOCK = "controls_config"


class ConfigNotApprovedError(ConfigError):
    code = "config_not_approved"


def controlled(config: FinsyncConfig) -> dict[str, Any]:
    """The controlled sections as JSON values (decimals as strings)."""
    data: dict[str, Any] = config.model_dump(mode="json", include=set(CONTROLLED))
    return data


def fingerprint(sections: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(sections).encode()).hexdigest()


def changed_sections(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [name for name in CONTROLLED if before.get(name) != after.get(name)]


class ConfigControl:
    def __init__(self, engine: Engine, requests: TwoPerson,
                 clock: Callable[[], datetime]) -> None:
        self._engine, self._requests, self._clock = engine, requests, clock

    def check(self, config: FinsyncConfig) -> str:
        """The configuration's fingerprint if it is the one in force (the first one a
        database sees is adopted), else `ConfigNotApprovedError` with the way out."""
        sections = controlled(config)
        current = fingerprint(sections)
        with transaction(self._engine) as conn:
            serialize(conn, LOCK)
            in_force = _in_force(conn)
            if in_force is None:
                _adopt(conn, current, sections, ADOPTER, None, self._clock())
                return current
        if in_force["fingerprint"] == current:
            return current
        changed = changed_sections(json.loads(in_force["sections"]), sections)
        waiting = [r for r in self._requests.listing(kind=CHANGE) if r.subject == current]
        how = (f"a second principal approves it: `finsync config approve {waiting[0].id} "
               "--note ...`" if waiting else
               "propose it (`finsync config propose --reason ...`, scope admin) and have a "
               "second principal approve it (`finsync config approve ID --note ...`, scopes "
               "admin and exceptions:approve)")
        raise ConfigNotApprovedError(
            f"the controlled configuration changed ({', '.join(changed) or 'values'}): "
            f"{current[:12]} is not approved (in force: {in_force['fingerprint'][:12]}); "
            f"{how}; `finsync config show` shows the difference")

    def propose(self, principal: Principal, config: FinsyncConfig, reason: str) -> Request:
        require(principal, ADMIN)
        sections = controlled(config)
        current = fingerprint(sections)
        with reading(self._engine) as conn:
            in_force = _in_force(conn)
        if in_force is not None and in_force["fingerprint"] == current:
            raise ControlError(f"the configuration {current[:12]} is in force already: "
                               "nothing to propose")
        before = json.loads(in_force["sections"]) if in_force is not None else {}

        def audit(conn: Connection, request: Request) -> None:
            trail.append(conn, Entry(principal.id, "config.propose", "config", current,
                                     reason, before=before, after=sections), self._clock())
        return self._requests.request(
            principal, CHANGE, current,
            {"sections": sections,
             "previous": in_force["fingerprint"] if in_force is not None else None},
            APPROVER_NEEDS, reason, also=audit)

    def decide(self, principal: Principal, request_id: int, note: str, *,
               approve: bool) -> Request:
        def adopt(conn: Connection, request: Request) -> None:
            serialize(conn, LOCK)
            _adopt(conn, request.subject, request.params["sections"], principal.id,
                   request.id, self._clock())
        return self._requests.decide(request_id, principal, note, approve=approve,
                                     kind=CHANGE, carry_out=adopt)

    def show(self, config: FinsyncConfig) -> dict[str, Any]:
        """The fingerprint in force, the configuration's own, what differs, and what waits."""
        sections = controlled(config)
        current = fingerprint(sections)
        with reading(self._engine) as conn:
            in_force = _in_force(conn)
        before = json.loads(in_force["sections"]) if in_force is not None else None
        return {"fingerprint": current,
                "in_force": None if in_force is None else {
                    "fingerprint": in_force["fingerprint"],
                    "adopted_at": in_force["adopted_at"].isoformat(),
                    "adopted_by": in_force["adopted_by"],
                    "request_id": in_force["request_id"]},
                "approved": in_force is None or in_force["fingerprint"] == current,
                "changed": [] if before is None else changed_sections(before, sections),
                "pending": [r.as_json() for r in self._requests.listing(kind=CHANGE)]}


def _in_force(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(select(t.config).where(
        t.config.c.seq == select(func.max(t.config.c.seq)).scalar_subquery())).mappings().first()
    return None if row is None else dict(row)


def _adopt(conn: Connection, print_: str, sections: dict[str, Any], actor: str,
           request_id: int | None, now: datetime) -> None:
    seq = conn.execute(select(func.coalesce(func.max(t.config.c.seq), 0))).scalar_one()
    conn.execute(insert(t.config).values(seq=int(seq) + 1, fingerprint=print_,
                                         sections=canonical(sections), adopted_at=now,
                                         adopted_by=actor, request_id=request_id))
    action = "config.adopt" if request_id is None else "config.approve"
    reason = ("the first configuration this database saw" if request_id is None
              else f"request {request_id} approved")
    trail.append(conn, Entry(actor, action, "config", print_, reason, after=sections), now)
