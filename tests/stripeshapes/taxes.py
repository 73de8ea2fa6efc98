"""Stripe tax rates and Stripe Tax's entries on invoice and credit note lines, in the CURRENT
API shape (`taxes[]`) and the older one localstripe answers in (`tax_amounts[]`), built on
Stripe's own example tax rate (`shaped`).

Shapes, as stripe/openapi (`spec3`) documents them:
- `BillingBillResourceInvoicingTaxesTax` (a line's `taxes[]`, invoice and credit note
  lines): `amount`, `tax_behavior` (`exclusive` | `inclusive`), `taxability_reason`
  (`standard_rated`, `reverse_charge`, `customer_exempt`, `not_subject_to_tax`, …),
  `taxable_amount` (nullable), `type` `tax_rate_details` and `tax_rate_details.tax_rate`
  (the rate's id; expandable);
- the older `tax_amounts[]` (`InvoiceTaxAmount`, `CreditNoteTaxAmount`): `amount`,
  `inclusive`, `tax_rate` (id or expanded), `taxability_reason`, `taxable_amount`;
- `tax_rate`: `country`, `state` (ISO 3166-2 without its country prefix), `jurisdiction`,
  `jurisdiction_level` (`country`, `state`, `county`, `city`, `district`, `multiple`),
  `percentage` (a JSON number), `tax_type` (`vat`, `sales_tax`, …).
localstripe's tax rates hold no `country`, `state` or `tax_type` (`display_name`,
`percentage`, `inclusive`, `jurisdiction` only).
"""

from __future__ import annotations

from typing import Any

from finsync.connectors.stripe.taxes import rate_key
from tests.stripeshapes import shaped

Obj = dict[str, Any]


def rate(rate_id: str, percentage: float | int | str, *, country: str | None,
         state: str | None = None,
         jurisdiction: str | None = None, level: str | None = None,
         tax_type: str | None = "vat", inclusive: bool = False) -> Obj:
    """A tax rate (Stripe Tax creates one per jurisdiction and rate it applies)."""
    return shaped("tax_rate", id=rate_id, percentage=percentage, country=country, state=state,
                  jurisdiction=jurisdiction or country, jurisdiction_level=level,
                  tax_type=tax_type, inclusive=inclusive, display_name="Tax",
                  description=None, flat_amount=None, rate_type="percentage",
                  effective_percentage=percentage)


VAT_DE = rate("txr_vat", 19, country="DE", level="country")
VAT_DE_RC = rate("txr_vat_rc", 0, country="DE", level="country")  # reverse charged
VAT_GB = rate("txr_vat_gb", 20, country="GB", level="country")
NY_STATE = rate("txr_ny", 4, country="US", state="NY", jurisdiction="NEW YORK",
                level="state", tax_type="sales_tax")
ERIE_COUNTY = rate("txr_erie", 4.75, country="US", state="NY", jurisdiction="ERIE COUNTY",
                   level="county", tax_type="sales_tax")
CA_STATE = rate("txr_ca", 0, country="US", state="CA", jurisdiction="CALIFORNIA",
                level="state", tax_type="sales_tax")
MANUAL = rate("txr_manual", 10, country=None, jurisdiction=None, tax_type=None)  # no country
RATES = {r["id"]: r for r in (VAT_DE, VAT_DE_RC, VAT_GB, NY_STATE, ERIE_COUNTY, CA_STATE,
                              MANUAL)}


def tax(amount: int, rate_id: str = "txr_vat", *, behavior: str = "exclusive",
        reason: str | None = "standard_rated", taxable: int | None = None) -> Obj:
    """One entry of a line's `taxes` (current API)."""
    return {"amount": amount, "tax_behavior": behavior, "type": "tax_rate_details",
            "tax_rate_details": {"tax_rate": rate_id}, "taxability_reason": reason,
            "taxable_amount": taxable}


def tax_amount(amount: int, rate_ref: str | Obj = "txr_vat", *, inclusive: bool = False,
               reason: str | None = None, taxable: int | None = None) -> Obj:
    """One entry of a line's `tax_amounts` (older shape); `rate_ref` an id or expanded."""
    return {"amount": amount, "inclusive": inclusive, "tax_rate": rate_ref,
            "taxability_reason": reason, "taxable_amount": taxable}


def related_rates(*rate_ids: str) -> dict[str, Obj]:
    """What the poller carries beside an event whose lines name `rate_ids`."""
    return {rate_key(r): RATES[r] for r in rate_ids}


def customer(cus_id: str, *, country: str | None, state: str | None = None,
             tax_ids: tuple[tuple[str, str], ...] = ()) -> Obj:
    """A customer at an address, with its tax ids (`(type, value)`, as `expand[]=tax_ids`
    lists them)."""
    address = {"city": None, "country": country, "line1": None, "line2": None,
               "postal_code": None, "state": state}
    listed = [{"id": f"txi_{n}", "object": "tax_id", "type": kind, "value": value,
               "country": country, "created": 1_234_567_890, "customer": cus_id,
               "livemode": False, "verification": {"status": "verified",
                                                   "verified_address": None,
                                                   "verified_name": None}}
              for n, (kind, value) in enumerate(tax_ids)]
    return shaped("customer", id=cus_id, name="Acme GmbH", address=address, currency="eur",
                  tax_ids={"object": "list", "data": listed, "has_more": False,
                           "url": f"/v1/customers/{cus_id}/tax_ids"})
