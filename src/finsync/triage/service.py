"""The exception queue's actions.

Rules:
- Every action is a row in `triage_actions` with who asked, why and when; an action that
  needs approval waits there (`pending_approval`, the exception `awaiting_approval`) until a
  different person approves or rejects it (segregation of duties, `policy.py`), or until
  it expires undecided (`pending_ttl`): the action becomes `expired`, the exception `open`
  again (audited as `approval.expire` by `system:triage`), and it must be asked for again.
- Who acts is an authenticated principal, never a typed name: asking needs
  `exceptions:act`, deciding `exceptions:approve`. Ids are compared normalised, so a
  request of `ar.clerk` cannot be approved as `AR.CLERK`.
- Every action and decision is a record of the audit trail in its transaction: an action
  `exception.<action>` on object `exception` `<id>` (before and after the exception's
  status, and the action's id, status and parameters); a decision `approval.approve` or
  `approval.reject` on object `triage_action` `<action id>`.
- retry: send the failed delivery again now with fresh attempts (or map a refused raw event
  again); the exception becomes `retrying` and the delivery worker resolves it on success.
- retry of a `tax_failure` about an invoice held for tax (`hub.held_invoice`): the
  exception becomes `retrying`, and once the action is committed billing is asked to try
  the draft again (`HeldInvoicePort`; never inside the action's transaction, billing may
  share the database). Billing's answer comes back as events: the release resolves the
  exception, a new hold updates it. Billing that cannot be asked now is said in the
  outcome; the exception stays `retrying` for `serve`'s periodic retry (`hub.held_retry`).
- replay: retry every exception of a filtered set that has something to send again.
- reroute (`closed_period` only): book the document in the first open period on or after
  its own date; the document is not changed, only the ERP posting date.
- resolve (with a note) and ignore (with a reason) take an exception off the queue; neither
  changes the books, so above the threshold a second person must agree.
- resolve-duplicate (`duplicate_event` only) chooses which body stands. `stored`: the stored
  event stands and the exception closes. `received`: the received body takes the stored
  event's place (`hub.acceptance.supersede`), only while no delivery of the stored event is
  done (nor known to its ledger) or in flight; once posted it is refused (`already_posted`):
  a posted document is corrected by a correction document in the source system. Both are
  corrections (approval above the threshold); a duplicate_event has nothing to retry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.audit.coverage import triage_action_state
from finsync.auth.local import require
from finsync.auth.principal import EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, Principal
from finsync.connectors.ports import HeldInvoicePort, LedgerPort
from finsync.domain.clock import first_of_next_month
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ConnectorError, DomainError, ExceptionClass
from finsync.domain.events import AnyEvent
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.domain.status import (
    UNRESOLVED,
    ActionStatus,
    DeliveryStatus,
    EventStatus,
    ExceptionStatus,
    RawStatus,
)
from finsync.hub import acceptance, exception_view, held_invoice
from finsync.hub.intake import MAPPING_OBJECT, REFUSED
from finsync.storage import event_log, exception_log, outbox, raw_log, triage_log
from finsync.storage.db import reading, serialize, transaction
from finsync.triage.policy import Action, ApprovalPolicy

SEARCH_MONTHS = 24
EXPIRER = "system:triage"


class TriageError(DomainError):
    code = "triage_refused"


class UnknownExceptionError(TriageError, exception_view.UnknownExceptionError):
    code = "unknown_exception"


class NotApplicableError(TriageError):
    code = "action_not_applicable"


class SegregationOfDutiesError(TriageError):
    code = "same_person"


class ApprovalExpiredError(TriageError):
    code = "approval_expired"


class AlreadyPostedError(TriageError):
    """The stored event of a `duplicate_event` reached the books: it is never replaced."""

    code = "already_posted"


class Keep(StrEnum):
    """Which body of a `duplicate_event` stands."""

    STORED = "stored"
    RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class Outcome:
    action_id: int
    exception_id: int
    action: str
    status: ActionStatus
    detail: str


class Triage:
    def __init__(self, engine: Engine, policy: ApprovalPolicy,
                 ledgers: Callable[[str], LedgerPort | None],
                 clock: Callable[[], datetime], held: HeldInvoicePort | None = None) -> None:
        self._engine, self._policy, self._ledgers, self._clock = engine, policy, ledgers, clock
        self._held = held

    # -- reading ----------------------------------------------------------------------
    @property
    def policy(self) -> ApprovalPolicy:
        """Which actions wait for a second person, and how long."""
        return self._policy

    def needs_approval(self, action: Action, row: dict[str, Any]) -> bool:
        """Whether `action` on the exception `row` would wait for a second person."""
        return self._policy.needs_approval(action, _at_stake(row))

    def listing(self, *, status: str | None = ExceptionStatus.OPEN,
                exception_class: str | None = None,
                correlation_id: str | None = None) -> list[dict[str, Any]]:
        with reading(self._engine) as conn:
            rows = exception_log.listing(conn, status=status, exception_class=exception_class)
        now = self._clock()
        return [_with_age(r, now) for r in rows
                if correlation_id is None or r["correlation_id"] == correlation_id]

    def show(self, exception_id: int, *, can_read_pii: bool = False) -> dict[str, Any]:
        """One exception with its actions, its delivery and the payload it is about; its
        personal data only for a reader who may see it (`hub.exception_view`)."""
        with reading(self._engine) as conn:
            self._exception(conn, exception_id)  # triage's own error for an unknown id
            row = exception_view.detail(conn, exception_id, can_read_pii)
            row["actions"] = [exception_view.texts(a, can_read_pii)
                              for a in triage_log.for_exception(conn, exception_id)]
            row["delivery"] = outbox.get(conn, row["delivery_id"]) if row["delivery_id"] else None
        return _with_age(row, self._clock())

    # -- actions ----------------------------------------------------------------------
    def retry(self, exception_id: int, actor: Principal, reason: str) -> Outcome:
        return self._request(exception_id, Action.RETRY, {}, actor, reason)

    def replay(self, actor: Principal, reason: str, *, exception_class: str | None = None,
               correlation_id: str | None = None,
               exception_ids: Collection[int] | None = None) -> list[Outcome]:
        """Retry every unresolved exception of the set that has something to send again
        (of `exception_ids` only, when given: the console's filtered queue)."""
        require(actor, EXCEPTIONS_ACT)
        replayable = (ExceptionStatus.OPEN, ExceptionStatus.RETRYING)
        if exception_ids is None:
            rows = [row for status in replayable
                    for row in self.listing(status=status, exception_class=exception_class,
                                            correlation_id=correlation_id)]
        else:
            rows = self._rows(exception_ids)
        chosen = [row for row in rows
                  if row["status"] in replayable
                  and (row["delivery_id"] or row["raw_event_id"]
                       or held_invoice.draft_of(row) is not None)
                  and row["class"] != ExceptionClass.DUPLICATE_EVENT
                  and exception_class in (None, row["class"])
                  and correlation_id in (None, row["correlation_id"])]
        return [self._request(row["id"], Action.REPLAY, {}, actor, reason) for row in chosen]

    def reroute(self, exception_id: int, actor: Principal, reason: str) -> Outcome:
        require(actor, EXCEPTIONS_ACT)
        with reading(self._engine) as conn:
            row = self._exception(conn, exception_id)
        if row["class"] != ExceptionClass.CLOSED_PERIOD.value or not row["delivery_id"]:
            raise NotApplicableError(f"exception {exception_id} is {row['class']}: only a "
                                     "closed_period delivery can be re-routed")
        posting = self._first_open_day(row)
        return self._request(exception_id, Action.REROUTE,
                             {"posting_date": posting.isoformat()}, actor, reason)

    def resolve(self, exception_id: int, actor: Principal, note: str) -> Outcome:
        return self._request(exception_id, Action.RESOLVE, {}, actor, note)

    def ignore(self, exception_id: int, actor: Principal, reason: str) -> Outcome:
        return self._request(exception_id, Action.IGNORE, {}, actor, reason)

    def resolve_duplicate(self, exception_id: int, keep: Keep, actor: Principal,
                          note: str) -> Outcome:
        """Choose which body of a `duplicate_event` stands. Keeping the received body is
        refused at once when the stored event is already posted, not after an approval."""
        require(actor, EXCEPTIONS_ACT)
        with reading(self._engine) as conn:
            row = self._exception(conn, exception_id)
        if row["class"] != ExceptionClass.DUPLICATE_EVENT:
            raise NotApplicableError(f"exception {exception_id} is {row['class']}: only a "
                                     "duplicate_event has two bodies to choose from")
        if keep is Keep.RECEIVED and row["status"] in (ExceptionStatus.OPEN,
                                                       ExceptionStatus.RETRYING):
            self._check_replaceable(exception_id)
        return self._request(exception_id, Action.CHOOSE_BODY, {"keep": keep.value},
                             actor, note)

    def approve(self, action_id: int, actor: Principal, note: str) -> Outcome:
        require(actor, EXCEPTIONS_APPROVE)
        with reading(self._engine) as conn:
            pending = triage_log.get(conn, action_id)
        if (pending is not None and pending["action"] == Action.CHOOSE_BODY
                and pending["params"].get("keep") == Keep.RECEIVED):
            self._check_replaceable(pending["exception_id"])
        return self._decide(action_id, actor, note, approve=True)

    def reject(self, action_id: int, actor: Principal, note: str) -> Outcome:
        return self._decide(action_id, actor, note, approve=False)

    # -- internals --------------------------------------------------------------------
    def _request(self, exception_id: int, action: Action, params: dict[str, str],
                 principal: Principal, reason: str) -> Outcome:
        require(principal, EXCEPTIONS_ACT)
        if not reason.strip():
            raise TriageError("every action needs why (reason or note)")
        actor = principal.id
        self.expire_due()  # an expired request no longer blocks its exception
        now = self._clock()
        with transaction(self._engine) as conn:
            row = self._exception(conn, exception_id)
            if row["status"] not in UNRESOLVED:
                raise NotApplicableError(f"exception {exception_id} is already {row['status']}")
            if row["status"] == ExceptionStatus.AWAITING_APPROVAL:
                raise NotApplicableError(f"exception {exception_id} has an action awaiting "
                                         "approval; approve or reject it first")
            at_stake = _at_stake(row)
            if self._policy.needs_approval(action, at_stake):
                action_id = triage_log.record(conn, exception_id, action.value, params, reason,
                                              actor, ActionStatus.PENDING_APPROVAL, now)
                exception_log.set_status(conn, exception_id, ExceptionStatus.AWAITING_APPROVAL,
                                         now)
                _audit_action(conn, row, action, params, actor, reason, action_id, now)
                return Outcome(action_id, exception_id, action.value,
                               ActionStatus.PENDING_APPROVAL,
                               f"{at_stake} is above the approval threshold: another person "
                               "must approve")
            detail = self._carry_out(conn, row, action, params, actor, reason, now)
            action_id = triage_log.record(conn, exception_id, action.value, params, reason,
                                          actor, ActionStatus.DONE, now)
            _audit_action(conn, row, action, params, actor, reason, action_id, now)
        detail = self._after(row, action, detail)
        return Outcome(action_id, exception_id, action.value, ActionStatus.DONE, detail)

    def expire_due(self) -> list[int]:
        """Expire every action that waited for approval longer than the policy allows; the
        ids of those expired now."""
        now = self._clock()
        with transaction(self._engine) as conn:
            due = triage_log.pending_before(conn, now - self._policy.pending_ttl)
            for pending in due:
                triage_log.decide(conn, pending["id"], ActionStatus.EXPIRED, EXPIRER,
                                  "not decided in time", now)
                exception_log.set_status(conn, pending["exception_id"], ExceptionStatus.OPEN,
                                         now)
                row = self._exception(conn, pending["exception_id"])
                trail.append(conn, Entry(
                    EXPIRER, "approval.expire", "triage_action", str(pending["id"]),
                    f"not decided within {self._policy.pending_ttl}",
                    before={"status": ActionStatus.PENDING_APPROVAL.value},
                    after=_action_state(conn, int(pending["id"]), row["id"]),
                    correlation_id=row["correlation_id"]), now)
        return [int(p["id"]) for p in due]

    def _decide(self, action_id: int, principal: Principal, note: str, *,
                approve: bool) -> Outcome:
        require(principal, EXCEPTIONS_APPROVE)
        if not note.strip():
            raise TriageError("every decision needs why (reason or note)")
        actor = principal.id
        self.expire_due()
        now = self._clock()
        with transaction(self._engine) as conn:
            pending = triage_log.get(conn, action_id)
            if pending is not None and pending["status"] == ActionStatus.EXPIRED:
                raise ApprovalExpiredError(
                    f"action {action_id} was not decided within {self._policy.pending_ttl} "
                    "and expired; the exception is open again: ask again")
            if pending is None or pending["status"] != ActionStatus.PENDING_APPROVAL:
                raise NotApplicableError(f"action {action_id} is not awaiting approval")
            if _same_person(principal, pending["requested_by"]):
                raise SegregationOfDutiesError(
                    f"{pending['requested_by']} asked for action {action_id}; a different "
                    f"person must decide (not {actor})")
            row = self._exception(conn, pending["exception_id"])
            exception_log.set_status(conn, row["id"], ExceptionStatus.OPEN, now)
            row["status"] = ExceptionStatus.OPEN
            detail = "rejected: the exception stays open"
            if approve:
                detail = self._carry_out(conn, row, Action(pending["action"]),
                                         pending["params"], pending["requested_by"],
                                         pending["reason"], now)
            decision = ActionStatus.DONE if approve else ActionStatus.REJECTED
            triage_log.decide(conn, action_id, decision, actor, note, now)
            trail.append(conn, Entry(
                actor, f"approval.{'approve' if approve else 'reject'}", "triage_action",
                str(action_id), note,
                before={"status": ActionStatus.PENDING_APPROVAL.value},
                after=_action_state(conn, action_id, row["id"]),
                correlation_id=row["correlation_id"]), now)
        if approve:
            detail = self._after(row, Action(pending["action"]), detail)
        return Outcome(action_id, row["id"], pending["action"], decision, detail)

    def _after(self, row: dict[str, Any], action: Action, detail: str) -> str:
        """What an action done asks of a system once it is committed: billing to try a
        held draft again (`_carry_out` made its exception `retrying`)."""
        draft = held_invoice.draft_of(row)
        if draft is None or action not in (Action.RETRY, Action.REPLAY) or self._held is None:
            return detail
        try:
            answer = self._held.retry_held(draft)
        except ConnectorError as exc:
            return (f"{detail}; {self._held.system} could not be asked now ({exc}): the "
                    "periodic retry asks again")
        issued = [invoice for held, invoice in answer.issued if held == draft]
        if issued:
            return f"{detail}; {self._held.system} issued it as invoice {issued[0]}"
        return f"{detail}; {self._held.system} holds it again (its tax failed again)"

    def _carry_out(self, conn: Connection, row: dict[str, Any], action: Action,
                   params: dict[str, str], actor: str, reason: str, now: datetime) -> str:
        if action in (Action.RESOLVE, Action.IGNORE):
            status = ExceptionStatus.IGNORED
            if action is Action.RESOLVE:
                status = ExceptionStatus.RESOLVED
            exception_log.close(conn, row["id"], status, f"{actor}: {reason}", now)
            return status.value
        if action is Action.CHOOSE_BODY:
            return self._keep(conn, row, Keep(params["keep"]), actor, reason, now)
        if row["class"] == ExceptionClass.DUPLICATE_EVENT:
            raise NotApplicableError(f"exception {row['id']} is a duplicate_event: nothing to "
                                     "send again; choose which body stands "
                                     "(resolve-duplicate --keep stored|received)")
        if row["delivery_id"]:
            override = params if action is Action.REROUTE else None
            if not outbox.retry_now(conn, row["delivery_id"], now, override):
                raise NotApplicableError(f"delivery {row['delivery_id']} is in flight or done")
            exception_log.set_status(conn, row["id"], ExceptionStatus.RETRYING, now)
            where = f" on {params['posting_date']}" if override else ""
            return f"delivery {row['delivery_id']} sent again{where}"
        if (draft := held_invoice.draft_of(row)) is not None:
            if self._held is None:
                raise NotApplicableError(f"exception {row['id']}: no billing system that holds "
                                         "invoices for tax is configured to retry it")
            exception_log.set_status(conn, row["id"], ExceptionStatus.RETRYING, now)
            return f"held draft {draft} sent to billing to be tried again"
        refused = _refused(row)
        if refused is not None:
            return self._remap_refused(conn, row, refused, actor, reason, now)
        if row["raw_event_id"]:
            ids = _copies(conn, row) or [int(row["raw_event_id"])]
            for raw_id in ids:
                raw_log.mark(conn, raw_id, RawStatus.RECEIVED, now)
            exception_log.set_status(conn, row["id"], ExceptionStatus.RETRYING, now)
            if len(ids) == 1:
                return f"raw event {ids[0]} will be mapped again"
            return f"{len(ids)} raw events ({', '.join(map(str, ids))}) will be mapped again"
        raise NotApplicableError(f"exception {row['id']} ({row['class']}) has nothing to "
                                 "send again; fix the cause, then resolve it")

    @staticmethod
    def _remap_refused(conn: Connection, row: dict[str, Any], refused: tuple[str, str],
                       actor: str, reason: str, now: datetime) -> str:
        """Every raw event an aggregated refusal stands for is mapped again; the refusal is
        resolved, and a body that fails again opens its own `mapping_error` in the
        pipeline."""
        ids = raw_log.refused_ids(conn, *refused)
        for raw_id in ids:
            raw_log.mark(conn, raw_id, RawStatus.RECEIVED, now)
        note = f"{actor}: {len(ids)} refused raw event(s) sent to be mapped again: {reason}"
        exception_log.close(conn, row["id"], ExceptionStatus.RESOLVED, note, now)
        return f"{len(ids)} refused raw event(s) will be mapped again"

    def _keep(self, conn: Connection, row: dict[str, Any], keep: Keep, actor: str,
              reason: str, now: datetime) -> str:
        stored_id, received_id = acceptance.duplicate_pair(row["event_id"], row["objects"])
        if keep is Keep.STORED:
            note = f"{actor}: kept the stored event {stored_id}: {reason}"
            exception_log.close(conn, row["id"], ExceptionStatus.RESOLVED, note, now)
            return f"{stored_id} stands; the received body stays rejected ({received_id})"
        serialize(conn, acceptance.LOCK)  # no event is accepted or released meanwhile
        stored, status, received = self._replaceable(conn, row)
        note = f"{actor}: kept the received body {received_id} in place of {stored_id}: {reason}"
        detail = acceptance.supersede(conn, stored, status, received, note, now)
        if detail is None:
            raise NotApplicableError(f"a delivery of {stored_id} was taken or settled just now; "
                                     "try again")
        exception_log.close(conn, row["id"], ExceptionStatus.RESOLVED, note, now)
        return detail

    def _replaceable(self, conn: Connection,
                     row: dict[str, Any]) -> tuple[Envelope, EventStatus, Envelope]:
        """The stored event, its status and the received one, if the received body may take
        the stored event's place: the same document, and nothing of it posted or in flight."""
        stored_id, received_id = acceptance.duplicate_pair(row["event_id"], row["objects"])
        found = event_log.find(conn, stored_id)
        stored, received = event_log.get(conn, stored_id), event_log.get(conn, received_id)
        if found is None or stored is None or received is None:
            raise NotApplicableError(f"exception {row['id']}: event {stored_id} or "
                                     f"{received_id} is no longer stored")
        if found.status is EventStatus.REJECTED:
            raise NotApplicableError(f"event {stored_id} was rejected: nothing stands for the "
                                     "received body to replace; close this exception with "
                                     "--keep stored")
        if (stored.type, stored.aggregate) != (received.type, received.aggregate):
            raise NotApplicableError(
                f"the received body is {received.type} of {received.aggregate.type} "
                f"{received.aggregate.id} v{received.aggregate.version}, the stored one "
                f"{stored.type} of {stored.aggregate.type} {stored.aggregate.id} "
                f"v{stored.aggregate.version}: another document cannot take its place; have "
                "the source send it under an id of its own")
        for delivery in _deliveries(conn, stored_id):
            if delivery["status"] == DeliveryStatus.DONE:
                raise _already_posted(stored, delivery)
            if delivery["status"] == DeliveryStatus.IN_FLIGHT:
                raise NotApplicableError(
                    f"delivery {delivery['id']} of {stored.event_id} to {delivery['target']} "
                    "is in flight; try again once it has settled")
        return stored, found.status, received

    def _check_replaceable(self, exception_id: int) -> None:
        """`_replaceable`, and ask each ledger a delivery was tried with whether it holds a
        receipt under its key (the outcome may have been lost). Before, not inside, the
        action's transaction: the ledger may share the database, and a writer holds it."""
        with reading(self._engine) as conn:
            stored, _status, _received = self._replaceable(
                conn, self._exception(conn, exception_id))
            tried = [d for d in _deliveries(conn, stored.event_id)
                     if d["attempts"] or d["lease_expiries"]]
        for delivery in tried:
            ledger = self._ledgers(delivery["target"])
            if ledger is not None and ledger.find_receipt(delivery["delivery_key"]) is not None:
                raise _already_posted(stored, delivery)

    def _first_open_day(self, row: dict[str, Any]) -> date:
        with reading(self._engine) as conn:
            delivery = outbox.get(conn, row["delivery_id"])
            env = event_log.get(conn, delivery["event_id"]) if delivery else None
        if delivery is None or env is None:
            raise NotApplicableError(f"exception {row['id']} has no delivery to re-route")
        ledger = self._ledgers(delivery["target"])
        if ledger is None:
            raise NotApplicableError(f"{delivery['target']} is not a ledger")
        entity, day = _entity_and_date(env.event)
        month = day
        for _ in range(SEARCH_MONTHS):
            month = first_of_next_month(month)
            if ledger.period_status(entity, month) is PeriodStatus.OPEN:
                return month
        raise NotApplicableError(f"{entity} has no open period within {SEARCH_MONTHS} "
                                 f"months after {day}")

    def _rows(self, exception_ids: Collection[int]) -> list[dict[str, Any]]:
        """The exceptions of `exception_ids` that exist, in id order."""
        with reading(self._engine) as conn:
            found = [exception_log.get(conn, i) for i in sorted(exception_ids)]
        return [row for row in found if row is not None]

    @staticmethod
    def _exception(conn: Connection, exception_id: int) -> dict[str, Any]:
        row = exception_log.get(conn, exception_id)
        if row is None:
            raise UnknownExceptionError(f"no exception {exception_id}")
        return row


def _same_person(principal: Principal, requested_by: str) -> bool:
    """Whether `requested_by` (as stored; a row written before principals may hold a free-text
    name that is no principal id) names `principal`."""
    try:
        return principal.same_person(requested_by)
    except DomainError:
        return requested_by.strip().casefold() == principal.id


def _audit_action(conn: Connection, row: dict[str, Any], action: Action,
                  params: dict[str, str], actor: str, reason: str, action_id: int,
                  now: datetime) -> None:
    """The trail record of an action asked for: on the triage action (the row the
    coverage check compares), with the exception's status before and after."""
    trail.append(conn, Entry(
        actor, f"exception.{action.value}", "triage_action", str(action_id), reason,
        before={"exception_status": str(row["status"])},
        after={**_action_state(conn, action_id, row["id"]), "params": dict(params)},
        correlation_id=row["correlation_id"]), now)


def _action_state(conn: Connection, action_id: int, exception_id: int) -> dict[str, Any]:
    """A triage action's row as the trail holds it (`coverage.triage_action_state`), and
    its exception's status now."""
    state = triage_action_state(triage_log.get(conn, action_id) or {})
    after = exception_log.get(conn, exception_id)
    state["exception_status"] = str(after["status"]) if after else None
    return state


def _deliveries(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    found = [outbox.get(conn, i) for i in sorted(outbox.event_statuses(conn, [event_id]))]
    return [d for d in found if d is not None]


def _already_posted(stored: Envelope, delivery: dict[str, Any]) -> AlreadyPostedError:
    return AlreadyPostedError(
        f"{stored.aggregate.type} {stored.aggregate.id} (event {stored.event_id}) is already "
        f"posted to {delivery['target']} (delivery {delivery['id']}); a posted document is "
        "never replaced. Correct it in the source system with a correction document for the "
        "difference (a credit memo, or a reversal of the posting), then close this exception "
        "with --keep stored")


def _copies(conn: Connection, row: dict[str, Any]) -> list[int]:
    """The rejected raw events of a source object's `mapping_error` (every copy of the
    object it stands for, `hub.intake.reject_in`); empty for any other exception."""
    by_object = str(row["fingerprint"]).startswith(MAPPING_OBJECT)
    if row["class"] != ExceptionClass.MAPPING_ERROR or not by_object:
        return []
    named = [int(ref.removeprefix("raw_event:")) for ref in row["objects"]
             if str(ref).startswith("raw_event:") and ref.removeprefix("raw_event:").isdigit()]
    kept = [(i, raw_log.get(conn, i)) for i in named]
    return [i for i, raw in kept if raw is not None and raw.status is RawStatus.REJECTED]


def _refused(row: dict[str, Any]) -> tuple[str, str] | None:
    """`(source, code)` of an aggregated mapping refusal at intake, else None (signature
    refusals are never mapped: their bodies were not proven to come from the source)."""
    fingerprint = str(row["fingerprint"])
    if row["class"] != ExceptionClass.MAPPING_ERROR or not fingerprint.startswith(REFUSED):
        return None
    source, code = fingerprint.removeprefix(REFUSED).rsplit(":", 1)
    return source, code


def _at_stake(row: dict[str, Any]) -> Money | None:
    text = row["amount_at_stake"]  # "1234.56 USD", as exception_log shows it
    if text is None:
        return None
    amount, currency = text.split(" ")
    return Money.of(amount, currency)


def _entity_and_date(event: AnyEvent) -> tuple[str, date]:
    document = event.document
    if isinstance(document, Invoice | CreditMemo):
        return document.legal_entity, document.issue_date
    if isinstance(document, Payment):
        return document.legal_entity, document.received_on
    if isinstance(document, Refund):
        return document.legal_entity, document.issued_on
    if isinstance(document, JournalEntry):
        return document.legal_entity, document.posting_date
    raise NotApplicableError(f"{type(document).__name__} has no posting date to move")


def _with_age(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    end = row["resolved_at"] or now
    row["age_s"] = int((end - row["opened_at"]).total_seconds())
    return row

