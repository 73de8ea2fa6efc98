"""Invoices held for tax: the `tax_failure` exception the hub keeps for each held draft.

Rules:
- No system posts `invoice.held` or `invoice.released`; the hub acts on them when it
  accepts them (`hub.acceptance`), in the same transaction, like `payment.declined`.
- `invoice.held` records `invoice_held` on its thread (`acceptance.accepted_milestone`) and
  opens one `tax_failure` exception per draft id (or updates it: each hold
  is a version of the draft): its money at stake is the draft's subtotal, its correlation
  id the commercial thread's, its objects name the draft, the customer and the contract;
  it is `retrying` when the cause is transient (the hub and billing retry), else `open`
  (master data must change first). One waiting for a second person stays so.
- `invoice.released` resolves it, naming the invoice issued, and records
  `exception_resolved` on the thread, as the hub's other self-resolving exceptions do.
- Acceptance sees each version once (duplicates and replays never reach it), and both
  steps are idempotent anyway: the same hold writes the same row, a resolved one stays so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from finsync.audit import correction
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import InvoiceHeld, InvoiceReleased
from finsync.domain.invoice import HeldInvoice
from finsync.domain.status import ExceptionStatus
from finsync.hub.milestone import Milestone
from finsync.storage import exception_log, milestone_log
from finsync.storage.exception_log import NewException

FINGERPRINT = "tax_failure:held_invoice:"
OBJECT = "held_invoice:"
HUB = "hub"


def fingerprint(draft_id: str) -> str:
    """The one `tax_failure` exception of a held draft."""
    return f"{FINGERPRINT}{draft_id}"


def draft_of(row: dict[str, Any]) -> str | None:
    """The held draft an exception row is about, or None when it is about no held draft
    (a delivery's `tax_failure`, say)."""
    found = str(row.get("fingerprint") or "")
    if row.get("class") != ExceptionClass.TAX_FAILURE or not found.startswith(FINGERPRINT):
        return None
    return found.removeprefix(FINGERPRINT)


def accepted(conn: Connection, env: Envelope, at: datetime) -> None:
    """What the hub does on accepting `env`: a hold opens (or updates) the draft's
    exception, a release resolves it; any other event, nothing."""
    event = env.event
    if isinstance(event, InvoiceHeld):
        _hold(conn, env, event.held_invoice, at)
    elif isinstance(event, InvoiceReleased):
        _release(conn, env, event.held_invoice, at)


def _hold(conn: Connection, env: Envelope, draft: HeldInvoice, at: datetime) -> None:
    key = fingerprint(draft.id)
    status = ExceptionStatus.RETRYING if draft.transient else ExceptionStatus.OPEN
    latest = exception_log.latest_by_fingerprint(conn, (key,)).get(key)
    if latest is not None and latest[1] is ExceptionStatus.AWAITING_APPROVAL:
        status = ExceptionStatus.AWAITING_APPROVAL
    exception_log.open_exception(conn, NewException(
        ExceptionClass.TAX_FAILURE, key, summary(draft),
        correlation_id=env.correlation_id, objects=objects(draft),
        amount=draft.subtotal, event_id=env.event_id, status=status), at)


def _release(conn: Connection, env: Envelope, draft: HeldInvoice, at: datetime) -> None:
    note = (f"released by {env.source}: its tax was computed and it was issued as invoice "
            f"{draft.invoice_id}")
    if correction.resolve(conn, "tax", fingerprint(draft.id), note, at):
        milestone_log.record(conn, env.correlation_id, Milestone.EXCEPTION_RESOLVED,
                             env.event_id, HUB, at)


def summary(draft: HeldInvoice) -> str:
    """What finance reads in the queue: the code, what is held and what happens next."""
    then = ("billing retries it" if draft.transient
            else "fix the master data, then retry it")
    return (f"invoice draft {draft.id} for {draft.customer_id} ({draft.subtotal} before tax, "
            f"{draft.issue_date}) is held: {draft.code}: {draft.reason}; hold "
            f"{draft.version}; {then}")


def objects(draft: HeldInvoice) -> Sequence[str]:
    named = [f"{OBJECT}{draft.id}", f"customer:{draft.customer_id}"]
    if draft.contract_id is not None:
        named.append(f"contract:{draft.contract_id}")
    return tuple(named)
