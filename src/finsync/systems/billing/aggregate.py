"""What one billing command reads and locks: its customer and subscription, with their own
documents, never the whole company.

Rules:
- Each command names its aggregate: a customer (`RegisterCustomer`), a subscription
  (create, amend, cancel, renew, prepaid purchase, one-off charge, usage), an invoice
  (payment, credit memo) or a payment (refund). The clock (`RunClock`) names the
  subscriptions due by its date (`next_step_on`), no others; one that falls due while the
  run reads (a concurrent commit) waits for the next run.
- The ids a command names are resolved to their customer first (that link never changes);
  then the customer rows and the subscription rows are read `FOR UPDATE`, customers before
  subscriptions, each in a fixed order, so two commands never wait on each other in a
  cycle; every other row is read after those locks. On SQLite the write transaction
  (`BEGIN IMMEDIATE`) already serialises writers and `FOR UPDATE` is left out.
- Documents come with their aggregate: a subscription's invoices when the command may
  credit them (amendments, cancellations: a credit takes the newest lines that billed a
  contract line; with the drafts of the contract still held for tax), or the one invoice a
  payment or credit names; each invoice with its credit
  memos, payments and those payments' refunds (what is due). The usage record, payment or
  refund carrying the command's own id comes too, looked up by its key: that is the
  command's idempotency, decided by the database's unique key, not by scanning records.
  A clock run reads the usage its subscriptions have not rated yet.
- Held drafts come with the commands that retry them: `RetryHeldInvoices` (the one named,
  or every draft still held) and the clock (every draft still held), with their customers
  locked like the subscriptions'.
- A command that may issue a document (creation, amendment, cancellation, prepaid purchase,
  credit memo, clock run) also locks the document numbers (a few rows), last: numbers are
  gapless, so documents are issued one command at a time, while usage, payments and
  refunds never wait for it.
- A state read this way is a part of the whole state, in the same order; the pure core runs
  on it unchanged, and finds what it needs there (anything else is unknown, as before).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from sqlalchemy import Connection, false, select, union, update

from finsync.systems.billing import store
from finsync.systems.billing import tables as t
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelSubscription
from finsync.systems.billing.clock import next_step_on
from finsync.systems.billing.credit import IssueCreditMemo
from finsync.systems.billing.handler import Command, RecordUsage, RegisterCustomer, RunClock
from finsync.systems.billing.held import RetryHeldInvoices
from finsync.systems.billing.one_off import ChargeOneOff
from finsync.systems.billing.payment import PayInvoice, RefundPayment
from finsync.systems.billing.prepaid import PurchasePrepaid
from finsync.systems.billing.state import BillingConfig, BillingState
from finsync.systems.billing.store import Selection, Where
from finsync.systems.billing.subscription import CreateSubscription, RenewSubscription

ISSUING = (CreateSubscription, AmendSubscription, CancelSubscription, PurchasePrepaid,
           IssueCreditMemo, RunClock, RetryHeldInvoices, ChargeOneOff)


def load_for(conn: Connection, config: BillingConfig, command: Command) -> BillingState:
    """The part of the state `command` reads, its customer and subscription rows locked."""
    selection = _selection(conn, command)
    if isinstance(command, ISSUING):
        selection = replace(selection, lock_numbers=True)
    state = store.load(conn, config, selection)
    if isinstance(command, RunClock):
        # A subscription that fell due between the customers' read and its own (a commit
        # in between, PostgreSQL) is left to the next run: its customer is not locked here.
        locked = {customer.id for customer in state.customers}
        state = replace(state, subscriptions=tuple(
            s for s in state.subscriptions if s.contract.customer_id in locked),
            held=tuple(d for d in state.held if d.held.customer_id in locked))
    return state


def after(conn: Connection, command: Command, before: BillingState,
          applied: BillingState) -> None:
    """A clock run read every subscription whose stored next step is due; those it left
    unchanged had a stale (early) day stored: store their exact next step, so the next run
    does not read them again."""
    if not isinstance(command, RunClock):
        return
    for sub, was in zip(applied.subscriptions, before.subscriptions, strict=True):
        if sub is was:  # the clock keeps the subscriptions in order
            conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == sub.id)
                         .values(next_step_on=next_step_on(sub)))


def _selection(conn: Connection, command: Command) -> Selection:
    match command:
        case RegisterCustomer():
            return _select(customers=t.customers.c.id == command.customer.id)
        case CreateSubscription():
            contract = command.contract
            return _select(customers=t.customers.c.id == contract.customer_id,
                           subscriptions=t.subscriptions.c.id == contract.id)
        case AmendSubscription() | CancelSubscription():
            return _of_contract(conn, command.contract_id, with_invoices=True)
        case ChargeOneOff():  # with its invoices: a charge retried is billed once
            return _of_contract(conn, command.contract_id, with_invoices=True)
        case RenewSubscription() | PurchasePrepaid():
            return _of_contract(conn, command.contract_id)
        case RetryHeldInvoices():
            held = _still_held() if command.draft_id is None else (
                t.held_invoices.c.id == command.draft_id)
            return replace(_select(customers=t.customers.c.id.in_(
                select(t.held_invoices.c.customer_id).where(held))), held=held)
        case RecordUsage():
            return _of_contract(conn, command.record.contract_id, usage=(command.record.id,))
        case PayInvoice():
            return _of_invoice(conn, command.invoice_id, payments=(command.payment_id,))
        case IssueCreditMemo():
            return _of_invoice(conn, command.invoice_id)
        case RefundPayment():
            invoice = conn.execute(select(t.payments.c.invoice_id).where(
                t.payments.c.id == command.payment_id)).scalar_one_or_none()
            return _of_invoice(conn, invoice, payments=(command.payment_id,),
                               refunds=(command.refund_id,))
        case RunClock():
            due = t.subscriptions.c.next_step_on <= command.until
            customers = union(select(t.subscriptions.c.customer_id).where(due),
                              select(t.held_invoices.c.customer_id).where(_still_held()))
            return replace(_select(customers=t.customers.c.id.in_(customers),
                                   subscriptions=due, unrated=True), held=_still_held())
    raise AssertionError(f"no aggregate for {command!r}")  # every command is matched above


def _still_held() -> Where:
    return t.held_invoices.c.invoice_id.is_(None)


def _of_contract(conn: Connection, contract_id: str, *, with_invoices: bool = False,
                 usage: Collection[str] = ()) -> Selection:
    customer = conn.execute(select(t.subscriptions.c.customer_id).where(
        t.subscriptions.c.id == contract_id)).scalar_one_or_none()
    selection = _select(customers=t.customers.c.id == customer if customer else false(),
                        subscriptions=t.subscriptions.c.id == contract_id,
                        invoices=t.invoices.c.contract_id == contract_id if with_invoices
                        else false(), usage=usage)
    if not with_invoices:
        return selection
    # A credit must not miss what a held draft of the contract bills (`credit`).
    return replace(selection, held=(t.held_invoices.c.contract_id == contract_id)
                   & _still_held())


def _of_invoice(conn: Connection, invoice_id: str | None, *, payments: Collection[str] = (),
                refunds: Collection[str] = ()) -> Selection:
    customer = None if invoice_id is None else conn.execute(
        select(t.invoices.c.customer_id).where(t.invoices.c.id == invoice_id)
    ).scalar_one_or_none()
    return _select(customers=t.customers.c.id == customer if customer else false(),
                   invoices=t.invoices.c.id == invoice_id if invoice_id else false(),
                   payments=payments, refunds=refunds)


def _select(*, customers: Where, subscriptions: Where | None = None,
            invoices: Where | None = None, payments: Collection[str] = (),
            refunds: Collection[str] = (), usage: Collection[str] = (),
            unrated: bool = False) -> Selection:
    # Documents found two ways are named by one `IN (… UNION …)`, never `… OR …`: PostgreSQL
    # turns a lone IN into an index join, but filters every row of the table for an OR.
    subscriptions = false() if subscriptions is None else subscriptions
    invoice_ids = select(t.invoices.c.id).where(false() if invoices is None else invoices)
    pay, refund, records = t.payments.c, t.refunds.c, t.usage_records.c
    paid = select(pay.id).where(pay.invoice_id.in_(invoice_ids))
    unrated_ids = select(records.id).join(
        t.subscriptions, t.subscriptions.c.id == records.contract_id).where(
        subscriptions, records.occurred_on >= t.subscriptions.c.arrears_through)
    return Selection(
        customers=customers,
        subscriptions=subscriptions,
        invoices=t.invoices.c.id.in_(invoice_ids),
        credit_memos=t.credit_memos.c.invoice_id.in_(invoice_ids),
        payments=pay.id.in_(union(paid, select(pay.id).where(pay.id.in_(payments)))),
        declines=false(),  # only ever appended
        refunds=refund.id.in_(union(
            select(refund.id).where(refund.payment_id.in_(paid)),
            select(refund.id).where(refund.id.in_(refunds)))),
        usage=records.id.in_(union(select(records.id).where(records.id.in_(usage)),
                                   unrated_ids)) if unrated else records.id.in_(usage),
        usage_charges=false(),  # only ever appended
        held=false(),
        lock=True)
