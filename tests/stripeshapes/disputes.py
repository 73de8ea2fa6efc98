"""Disputes in the current API shape: the dispute and the balance transactions it shows.

A chargeback's money, as Stripe documents it: when the dispute opens, one balance
transaction (`type` "adjustment", `reporting_category` "dispute") takes the disputed amount
and the dispute fee out of the balance (`amount` < 0, `fee` > 0, `net = amount - fee`);
when it is won, another ("dispute_reversal") gives the amount back (`amount` > 0), and a
fee Stripe returns shows as a negative `fee`. An inquiry moves no money.
"""

from __future__ import annotations

from typing import Any

from tests.stripeshapes import DAY, T0, Obj, shaped

# Stripe's dispute fee in the US (minor units), as its pricing page states it.
FEE_USD = 1_500


def funds(txn: str, amount: int, fee: int, *, dispute: str, currency: str = "usd",
          created: int = T0) -> Obj:
    """One balance transaction of a dispute: `amount` the disputed money (negative: taken),
    `fee` the dispute fee (negative: given back)."""
    category = "dispute" if amount < 0 or (amount == 0 and fee > 0) else "dispute_reversal"
    fee_details = [] if fee == 0 else [{"amount": fee, "application": None,
                                        "currency": currency, "description": "Dispute fee",
                                        "type": "stripe_fee"}]
    return shaped("balance_transaction", id=txn, amount=amount, fee=fee, net=amount - fee,
                  currency=currency, created=created, available_on=created + 2 * DAY,
                  description=f"Chargeback {'withdrawal' if amount <= 0 else 'reversal'} "
                              f"for {dispute}",
                  fee_details=fee_details, reporting_category=category, source=dispute,
                  status="available", type="adjustment", exchange_rate=None)


def dispute(dispute_id: str, amount: int, *, status: str = "needs_response",
            currency: str = "usd", charge: str = "ch_1", payment_intent: str | None = "pi_1",
            transactions: list[Obj] | None = None, created: int = T0,
            reason: str = "fraudulent", case_type: str = "chargeback") -> Obj:
    details: dict[str, Any] = {"card": {"brand": "visa", "case_type": case_type,
                                        "network": "visa", "network_reason_code": "10.4"},
                               "type": "card"}
    return shaped("dispute", id=dispute_id, amount=amount, currency=currency, charge=charge,
                  payment_intent=payment_intent, status=status, created=created,
                  reason=reason, balance_transactions=transactions or [],
                  is_charge_refundable=False, payment_method_details=details)
