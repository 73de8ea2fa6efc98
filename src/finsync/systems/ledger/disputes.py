"""Posting a card dispute's money (pure, like `documents`).

Rules:
- The money a dispute takes is a claim on the card network while the dispute is open, not
  a customer's receivable: it sits in the dispute receivable (asset), outside the AR
  subledger, and the invoice the payment settled stays settled.
- A step of the dispute's money (`DisputeFunds`, withdrawn or reinstated) posts exactly what
  the processor moved, each leg on the side its sign gives it: the disputed amount taken
  (negative) is a debit of the dispute receivable and given back (positive) a credit; a fee
  charged (positive) is a debit of dispute fees and given back a credit; the net leaves
  cash (credit) or comes back (debit). Debits equal credits: -amount + fee = -net.
  Withdrawn: Dr dispute receivable, Dr dispute fees / Cr cash. Reinstated: the reverse.
- A closure moves what the dispute left unrecovered from the dispute receivable to
  chargeback losses (Dr losses / Cr receivable; the reverse for a negative one), at the
  values the steps booked the receivable at (each at its own day's rate), so a dispute in
  another currency leaves nothing behind in the receivable. Nothing unrecovered posts
  nothing: the adapter answers without an entry.
- Every step carries its own amounts, so the books come out the same whatever order the
  steps and the closure arrive in (the receivable may be negative in between).
"""

from __future__ import annotations

from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.money import Money, total
from finsync.systems.ledger.chart import Role
from finsync.systems.ledger.documents import Books, Posting
from finsync.systems.ledger.errors import LedgerError
from finsync.systems.ledger.rules import Dimensions, Leg


def _sided(books: Books, role: Role, debit_positive: Money, dims: Dimensions,
           debits: list[Leg], credits: list[Leg], functional: Money | None = None) -> None:
    """One leg on `role`'s account: a debit when positive, a credit when negative;
    `functional` (same sign) fixes its booked value."""
    if debit_positive.is_zero:
        return
    if debit_positive.amount > 0:
        debits.append(Leg(books.code(role), debit_positive, dims, functional))
    else:
        credits.append(Leg(books.code(role), -debit_positive, dims,
                           None if functional is None else -functional))


def post_dispute_funds(funds: DisputeFunds, books: Books) -> Posting:
    dims = (("dispute", funds.dispute_id), ("payment", funds.payment_id),
            ("document", funds.id))
    debits: list[Leg] = []
    credits: list[Leg] = []
    taken = -funds.amount
    # Booked at its own rate, as the closure relieves it (`post_dispute_closure`).
    _sided(books, Role.DISPUTE_RECEIVABLE, taken, dims, debits, credits,
           books.booked_on(taken, funds.booked_on))
    _sided(books, Role.DISPUTE_FEES, funds.fee, dims, debits, credits)
    _sided(books, Role.CASH, funds.net, dims, debits, credits)
    return Posting(books.lines(debits, credits))


def post_dispute_closure(closure: DisputeClosure, books: Books) -> Posting:
    if closure.unrecovered.is_zero:
        raise LedgerError(f"dispute {closure.id} closed with nothing unrecovered: there is "
                          "nothing to post")
    dims = (("dispute", closure.id), ("payment", closure.payment_id),
            ("outcome", closure.outcome.value))
    # What the steps booked on the receivable, each at its own day's rate: the receivable
    # clears exactly in the functional currency, and no FX is realised (no cash moves).
    booked: Money | None = total([books.booked_on(-step.amount, step.booked_on)
                                  for step in closure.steps], books.functional)
    if booked is None or booked.amount * closure.unrecovered.amount <= 0:
        booked = None  # a foreign cent that booked as nothing: at today's rate, then
    debits: list[Leg] = []
    credits: list[Leg] = []
    _sided(books, Role.CHARGEBACK_LOSSES, closure.unrecovered, dims, debits, credits, booked)
    _sided(books, Role.DISPUTE_RECEIVABLE, -closure.unrecovered, dims, debits, credits,
           None if booked is None else -booked)
    return Posting(books.lines(debits, credits))
