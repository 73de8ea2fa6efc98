"""The exception queue page: the filtered queue sorted by money at stake, one exception's
detail, the queue's actions, and the approvals inbox.

Rules:
- Reads compose triage's (`triage.queue`, `Triage.show`) and the hub's; personal data
  only for a reader with `pii:read`, the external calls of a delivery only with
  `audit:read`.
- Every action is the CLI's own service call (`Triage.retry`, `reroute`, …) acting as the
  caller, after the same check that the controlled configuration is the approved one, and
  followed by `hub.run_until_idle()` as `finsync exceptions …` does: what the action sent
  is delivered before the answer.
- Bulk replay of a filtered queue is a job (`Jobs`): the unresolved exceptions of the
  filter with something to send again (the `QUEUE_MAX` with the most at stake; the result
  says how many matched), each replayed on its own (one refused does not stop the others:
  it is listed with its code), then the pipeline run until idle.
- The approvals inbox lists the triage actions awaiting approval and the two-person
  requests (`controls`: a period reopen, a configuration change) still pending. Deciding
  checks segregation of duties in the service: approving your own request is refused
  (`same_person`), and the page shows that refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from finsync.auth.principal import AUDIT_READ, PII_READ, Principal
from finsync.bootstrap import approved_config, build_config_control, build_two_person
from finsync.controls.configuration import CHANGE
from finsync.controls.period import REOPEN, PeriodControl
from finsync.controls.request import ControlError, Request, TwoPerson
from finsync.domain.errors import DomainError, ExceptionClass
from finsync.domain.money import Money
from finsync.domain.status import ExceptionStatus
from finsync.hub.exception_view import texts
from finsync.hub.status import (
    STATUS_FILTERS,
    UnknownFilterError,
    parse_class_filter,
    parse_status_filter,
)
from finsync.triage.policy import Action
from finsync.triage.queue import QUEUE_MAX, QueueQuery, QueueReader, offered
from finsync.triage.service import Keep, Outcome, TriageError
from finsync.views.jobs import Job, Progress
from finsync.views.services import Services, SystemExternalError

REPLAY_JOB = "replay"
REPLAYABLE = (ExceptionStatus.OPEN, ExceptionStatus.RETRYING)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """The queue's filter as the page sends it (validated at the API's edge)."""

    status: str = "unresolved"
    exception_class: str | None = None
    entity: str | None = None
    currency: str | None = None
    age_min_s: int | None = None
    age_max_s: int | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["class"] = shown.pop("exception_class")
        for key in ("amount_min", "amount_max"):
            shown[key] = None if shown[key] is None else format(shown[key], "f")
        return shown


def _query(services: Services, chosen: QueueFilter) -> QueueQuery:
    """The storage query of a filter; a value that names nothing is refused with the
    allowed ones (never "nothing matches")."""
    known = [e.id for e in services.entities]
    if chosen.entity is not None and chosen.entity not in known:
        raise UnknownFilterError(f"unknown legal entity {chosen.entity!r}; allowed: "
                                 f"{', '.join(known)}", code="unknown_entity")
    if chosen.currency is not None:
        Money.zero(chosen.currency)  # unknown_currency, with the code
    for low, high, what in ((chosen.amount_min, chosen.amount_max, "amount"),
                            (chosen.age_min_s, chosen.age_max_s, "age")):
        if low is not None and high is not None and low > high:
            raise UnknownFilterError(f"the {what} bounds are reversed: {what}_min {low} is "
                                     f"above {what}_max {high}", code="invalid_filter")
    now = services.clock()
    return QueueQuery(
        parse_status_filter(chosen.status), parse_class_filter(chosen.exception_class),
        chosen.entity, chosen.currency,
        None if chosen.age_min_s is None else now - timedelta(seconds=chosen.age_min_s),
        None if chosen.age_max_s is None else now - timedelta(seconds=chosen.age_max_s),
        chosen.amount_min, chosen.amount_max)


def _reader(services: Services) -> QueueReader:
    return QueueReader(services.finance.hub.engine, services.clock)


def _json(value: Any) -> Any:
    """Rows as JSON values: timestamps ISO, everything else as it is."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _money(text: str | None) -> dict[str, str] | None:
    """`"1234.56 USD"` (as the exception log shows an amount) as JSON money."""
    if text is None:
        return None
    amount, currency = text.split(" ")
    return {"amount": amount, "currency": currency}


@dataclass(frozen=True, slots=True)
class Queue:
    """One page of the queue; `choices`: what each filter accepts (for the page's form)."""

    chosen: QueueFilter
    rows: list[dict[str, Any]]
    count: int
    at_stake: dict[str, str]
    entities: tuple[str, ...]
    limit: int

    def as_json(self) -> dict[str, Any]:
        rows = [{**_json(r), "at_stake": _money(r["amount_at_stake"])} for r in self.rows]
        return {"filter": self.chosen.as_json(), "count": self.count,
                "shown": len(rows), "limit": self.limit,
                "at_stake": [{"amount": a, "currency": c} for c, a in self.at_stake.items()],
                "exceptions": rows,
                "choices": {"status": list(STATUS_FILTERS),
                            "class": [c.value for c in ExceptionClass],
                            "entity": list(self.entities)}}


def queue(services: Services, chosen: QueueFilter, principal: Principal, *,
          limit: int = QUEUE_MAX) -> Queue:
    """The exceptions of `chosen`, the most money at stake first (`triage.queue`), at most
    `limit` of them (and `QUEUE_MAX`)."""
    page = _reader(services).queue(_query(services, chosen), limit=limit,
                                   can_read_pii=principal.can(PII_READ))
    return Queue(chosen, page.rows, page.count, page.at_stake(),
                 tuple(e.id for e in services.entities), min(limit, QUEUE_MAX))


def detail(services: Services, exception_id: int, principal: Principal) -> dict[str, Any]:
    """One exception: its texts, raw payload and mapped document (redacted by scope), its
    correlation chain, its deliveries' attempts (and their external calls with
    audit:read), the actions taken, and the actions that apply now."""
    triage = services.finance.triage
    can_read_pii = principal.can(PII_READ)
    row = triage.show(exception_id, can_read_pii=can_read_pii)
    row.pop("payload", None)  # shown as raw_payload and document
    row.pop("delivery", None)  # shown in deliveries, its last error redacted by scope
    context = _reader(services).context(row, can_read_pii=can_read_pii)
    actions = [{"action": name, "needs_approval": _needs_approval(services, name, row)}
               for name in offered(row)]
    calls = None
    if principal.can(AUDIT_READ) and row["correlation_id"]:
        keys = {d["delivery_key"] for d in context["deliveries"]}
        calls = [c.as_json() for c in services.finance.hub.calls(row["correlation_id"])
                 if keys & set(c.idempotency_keys)]
    return {**_json(row), **_json(context), "at_stake": _money(row["amount_at_stake"]),
            "offered": actions, "calls": calls,
            "milestones": _json(services.finance.hub.timeline(row["correlation_id"]))
            if row["correlation_id"] else []}


def _needs_approval(services: Services, name: str, row: dict[str, Any]) -> bool:
    action = Action.CHOOSE_BODY if name == "resolve_duplicate" else Action(name)
    return services.finance.triage.needs_approval(action, row)


# -- actions ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Acted:
    outcomes: tuple[Outcome, ...]

    def as_json(self) -> dict[str, Any]:
        return {"outcomes": [{**asdict(o), "status": o.status.value} for o in self.outcomes]}


def _act(services: Services, call: Callable[[], Outcome | list[Outcome]]) -> Acted:
    """`call` (a triage action as the caller), after the approved-configuration check the
    CLI makes, then the pipeline run until idle as the CLI does."""
    finance = services.finance
    approved_config(services.config, finance.hub.engine, finance.hub.clock)
    done = call()
    finance.hub.run_until_idle()
    return Acted(tuple(done) if isinstance(done, list) else (done,))


def retry(services: Services, exception_id: int, who: Principal, reason: str) -> Acted:
    return _act(services, lambda: services.finance.triage.retry(exception_id, who, reason))


def reroute(services: Services, exception_id: int, who: Principal, reason: str) -> Acted:
    return _act(services, lambda: services.finance.triage.reroute(exception_id, who, reason))


def resolve(services: Services, exception_id: int, who: Principal, reason: str) -> Acted:
    return _act(services, lambda: services.finance.triage.resolve(exception_id, who, reason))


def ignore(services: Services, exception_id: int, who: Principal, reason: str) -> Acted:
    return _act(services, lambda: services.finance.triage.ignore(exception_id, who, reason))


def resolve_duplicate(services: Services, exception_id: int, keep: Keep, who: Principal,
                      reason: str) -> Acted:
    return _act(services, lambda: services.finance.triage.resolve_duplicate(
        exception_id, keep, who, reason))


def start_replay(services: Services, chosen: QueueFilter, who: Principal,
                 reason: str) -> Job:
    """Replay the unresolved exceptions of `chosen` with something to send again, as a job
    (one replay at a time: a second start answers the running job)."""
    finance = services.finance
    if not reason.strip():
        raise TriageError("every action needs why (reason or note)")
    # What a replay can send again: open and retrying (not awaiting approval).
    query = replace(_query(services, chosen), statuses=REPLAYABLE)
    approved_config(services.config, finance.hub.engine, finance.hub.clock)

    def work(progress: Progress) -> dict[str, Any]:
        progress("choosing", 0, 0)
        page = _reader(services).queue(query)
        ids = [r["id"] for r in page.rows]
        replayed, refused = [], []
        for done, exception_id in enumerate(ids):
            progress("replaying", done, len(ids))
            try:
                outcomes = finance.triage.replay(who, reason, exception_ids=[exception_id])
            except DomainError as exc:
                refused.append({"exception_id": exception_id, "code": exc.code,
                                "message": str(exc)})
                continue
            if not outcomes:  # a duplicate_event, or nothing stored to send again
                refused.append({"exception_id": exception_id, "code": "nothing_to_send",
                                "message": "nothing to send again: resolve or ignore it"})
            replayed += outcomes
        progress("delivering", len(ids), len(ids))
        summary = finance.hub.run_until_idle()
        # At most QUEUE_MAX per job, the most at stake first: `matching` says how many
        # the filter chose, so a partial replay is never mistaken for a whole one.
        return {"matching": page.count, "chosen": len(ids),
                "replayed": [{**asdict(o), "status": o.status.value} for o in replayed],
                "refused": refused,
                "deliveries_attempted": summary.deliveries_attempted}
    return services.jobs.start(REPLAY_JOB, who.id, work)


# -- approvals ----------------------------------------------------------------------------
def inbox(services: Services, principal: Principal) -> dict[str, Any]:
    """What waits for a second person: triage actions and two-person requests, each with
    whether the caller asked for it (then approving it is refused: `same_person`). Read
    only (no write lock behind the pipeline's postings): what is past its time is left out
    here, and expired by the next action or decision."""
    ttl = services.finance.triage.policy.pending_ttl
    now = services.clock()
    can_read_pii = principal.can(PII_READ)
    actions = []
    for pending in _reader(services).pending():
        if pending["requested_at"] + ttl <= now:
            continue  # expired undecided: deciding it is refused (approval_expired)
        exception = pending.pop("exception") or {}
        shown = _json(texts(pending, can_read_pii))
        actions.append({**shown, "kind": "triage_action",
                        "expires_at": (pending["requested_at"] + ttl).isoformat(),
                        "mine": _mine(principal, pending["requested_by"]),
                        "exception": {"id": exception.get("id"),
                                      "class": exception.get("class"),
                                      "correlation_id": exception.get("correlation_id"),
                                      "summary": texts(exception, can_read_pii).get("summary"),
                                      "at_stake": _money(exception.get("amount_at_stake"))}})
    requests = [{**r.as_json(), "mine": _mine(principal, r.requested_by)}
                for r in _two_person(services).waiting()]
    return {"actions": actions, "requests": requests,
            "count": len(actions) + len(requests)}


def _mine(principal: Principal, requested_by: str) -> bool:
    """Whether `principal` asked (a row written before principals may hold a free-text
    name that is no principal id: compared as the triage service compares it)."""
    try:
        return principal.same_person(requested_by)
    except DomainError:
        return requested_by.strip().casefold() == principal.id


def _two_person(services: Services) -> TwoPerson:
    finance = services.finance
    return build_two_person(services.config, finance.hub.engine, finance.hub.clock)


def decide_action(services: Services, action_id: int, who: Principal, note: str, *,
                  approve: bool) -> Acted:
    triage = services.finance.triage
    if approve:
        return _act(services, lambda: triage.approve(action_id, who, note))
    return _act(services, lambda: triage.reject(action_id, who, note))


def decide_request(services: Services, request_id: int, who: Principal, note: str, *,
                   approve: bool) -> Request:
    """Approve or reject a two-person request through the control that owns its kind
    (`finsync close reopen …`'s, `finsync config approve`'s)."""
    finance = services.finance
    requests = _two_person(services)
    kind = requests.get(request_id).kind
    if kind == REOPEN:
        if services.ledger is None:
            raise SystemExternalError("periods are kept by the external ERP: reopen them "
                                      "there")
        control = PeriodControl(requests, services.ledger)
        return control.decide_reopen(who, request_id, note, approve=approve)
    if kind == CHANGE:
        config = build_config_control(services.config, finance.hub.engine, finance.hub.clock)
        return config.decide(who, request_id, note, approve=approve)
    raise ControlError(f"request {request_id} is a {kind}: the console does not decide it")
