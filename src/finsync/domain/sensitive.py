"""Sensitive fields: which data is personal or free text, and how a view hides it.

Rules:
- The canonical model's sensitive fields are classified here, once (`CANONICAL_FIELDS`):
  the customer's name, and every free-text note (refund, dispute and credit-memo reasons, an
  amendment's reason, a document line's description, a journal entry's memo). Every other
  string field of a canonical document is named in `PUBLIC_FIELDS` (ids, codes, currencies),
  so a field added to the model must be classified before a test lets it pass.
- Sources send more than the canonical model keeps: e-mail addresses, phone numbers,
  postal addresses, tax ids and payment-method details (a Stripe customer or charge). Those
  are classified by their wire key (`KEYS`), wherever they appear in a payload; a `name` is
  personal inside a person-like object (`customer`, `billing_details`, `shipping`, an
  object with an e-mail, or a Stripe object of type `customer`).
- A view of a payload for a caller without `pii:read` replaces each sensitive value (a
  whole sub-object for an address or a payment method) by `[redacted: <class>]`
  (`redact`); the keys stay, so the reader sees what was there. Any other string loses its
  e-mail addresses and credentials (a value sent in the wrong field).
- Text built from a payload (an error summary, a log line) is scrubbed of that payload's
  sensitive values (`sensitive_values`, then `redact_text`), of e-mail addresses and of
  everything that looks like a credential (`domain.secret`), whoever reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from finsync.domain.contract import ContractAmendment
from finsync.domain.dispute import Dispute
from finsync.domain.invoice import CreditMemo, DocumentLine, HeldInvoice
from finsync.domain.journal import JournalEntry
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.payment import Refund
from finsync.domain.secret import mask_secrets


class Sensitivity(StrEnum):
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    TAX_ID = "tax_id"
    PAYMENT_METHOD = "payment_method"
    FREE_TEXT = "free_text"


# (canonical document type, field) -> its class. The codec writes a field under its own
# name, so `KEYS` below catches each of these in an encoded payload (a test proves it).
CANONICAL_FIELDS: Mapping[tuple[type, str], Sensitivity] = {
    (CustomerAccount, "name"): Sensitivity.NAME,
    (CustomerAccount, "tax_id"): Sensitivity.TAX_ID,
    (CustomerAccount, "address"): Sensitivity.ADDRESS,  # a whole `PostalAddress`
    (PostalAddress, "street"): Sensitivity.ADDRESS,
    (PostalAddress, "city"): Sensitivity.ADDRESS,
    (PostalAddress, "postal_code"): Sensitivity.ADDRESS,
    (HeldInvoice, "reason"): Sensitivity.FREE_TEXT,  # a tax engine's message may quote an address
    (Refund, "reason"): Sensitivity.FREE_TEXT,
    (Dispute, "reason"): Sensitivity.FREE_TEXT,  # Stripe's is a code; another source's text
    (CreditMemo, "reason"): Sensitivity.FREE_TEXT,
    (ContractAmendment, "reason"): Sensitivity.FREE_TEXT,
    (DocumentLine, "description"): Sensitivity.FREE_TEXT,
    (JournalEntry, "memo"): Sensitivity.FREE_TEXT,  # a credit memo's carries its reason
}

# Wire keys of personal data and free text, in any payload (lower case).
KEYS: Mapping[str, Sensitivity] = {
    "customer_name": Sensitivity.NAME,
    "email": Sensitivity.EMAIL,
    "receipt_email": Sensitivity.EMAIL,
    "customer_email": Sensitivity.EMAIL,
    "phone": Sensitivity.PHONE,
    "customer_phone": Sensitivity.PHONE,
    "address": Sensitivity.ADDRESS,
    "billing_address": Sensitivity.ADDRESS,
    "shipping_address": Sensitivity.ADDRESS,
    "customer_address": Sensitivity.ADDRESS,
    "shipping": Sensitivity.ADDRESS,
    "customer_shipping": Sensitivity.ADDRESS,
    "tax_id": Sensitivity.TAX_ID,
    "tax_ids": Sensitivity.TAX_ID,
    "customer_tax_ids": Sensitivity.TAX_ID,
    "vat_number": Sensitivity.TAX_ID,
    "tax_number": Sensitivity.TAX_ID,
    "payment_method": Sensitivity.PAYMENT_METHOD,
    "payment_method_details": Sensitivity.PAYMENT_METHOD,
    "billing_details": Sensitivity.PAYMENT_METHOD,
    "card": Sensitivity.PAYMENT_METHOD,
    "bank_account": Sensitivity.PAYMENT_METHOD,
    "iban": Sensitivity.PAYMENT_METHOD,
    "reason": Sensitivity.FREE_TEXT,
    "description": Sensitivity.FREE_TEXT,
    "memo": Sensitivity.FREE_TEXT,
    "note": Sensitivity.FREE_TEXT,
    "notes": Sensitivity.FREE_TEXT,
    "comment": Sensitivity.FREE_TEXT,
    "metadata": Sensitivity.FREE_TEXT,  # Stripe's: whatever the merchant typed
}

# Objects whose `name` is a person's (or a company's, which is as personal to a customer).
_PERSON_KEYS = frozenset({"customer", "billing_details", "shipping", "owner", "individual"})

# The names of the string fields of canonical documents that are not sensitive: ids, codes,
# currencies, countries, statuses. A test checks that every string field of every canonical
# document is here or in CANONICAL_FIELDS.
PUBLIC_FIELDS: frozenset[str] = frozenset({
    "id", "legal_entity", "currency", "billing_country", "customer_id", "contract_id",
    "invoice_id", "payment_id", "number", "product_id", "price_id", "line_id", "account",
    "transaction_currency", "correlation_id", "reverses", "reopens_invoice",
    "applied_to_invoice", "schedule_id", "obligation_id", "before", "after", "attribute",
    "subscription_id", "period", "contract_line_id", "dispute_id", "funds_id",
    "decline_code", "invoice_ids", "delivery_id", "billing_region", "jurisdiction",
    "tax_type", "code", "quote_id", "sold_to_id", "bill_to_id", "product_code",
})

# An address ends in a top-level domain of letters; the user part of a URL
# (`postgresql://postgres@db.example`) follows a slash and is not an address.
_EMAIL = re.compile(r"(?<![\w.%+/-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
                    r"\.[A-Za-z]{2,}\b")
_INDEX = re.compile(r"\[\d+\]")
MASKED_VALUE = "[redacted]"
VALUE_CHARS_MIN = 4  # shorter values ("US", "1") would scrub ordinary words from a text


def classify(key: str, parent_key: str | None = None,
             siblings: Mapping[str, Any] | None = None) -> Sensitivity | None:
    """The class of the value under `key`, in an object that is the value of `parent_key`
    (or an item of the list there) and holds `siblings`; None: not sensitive."""
    lowered = key.lower()
    found = KEYS.get(lowered)
    if found is not None:
        return found
    if lowered == "name" and _person_like(parent_key, siblings or {}):
        return Sensitivity.NAME
    return None


def _person_like(parent_key: str | None, siblings: Mapping[str, Any]) -> bool:
    if parent_key is not None and parent_key.lower() in _PERSON_KEYS:
        return True
    return "email" in siblings or siblings.get("object") == "customer"


def classify_path(path: str) -> Sensitivity | None:
    """The class of the value at a dotted path (`customer.name`, `invoice.lines[0].memo`,
    as `domain.diff` names one): the first sensitive key on the way down, else None."""
    parent: str | None = None
    for part in path.split("."):
        key = _INDEX.sub("", part)
        found = classify(key, parent)
        if found is not None:
            return found
        parent = key
    return None


def placeholder(sensitivity: Sensitivity) -> str:
    return f"[redacted: {sensitivity.value}]"


def redact(data: Any, parent_key: str | None = None) -> Any:
    """A copy of JSON data with every sensitive value replaced by its placeholder; a string
    anywhere else loses its e-mail addresses and credentials (a value sent in the wrong
    field is still personal)."""
    if isinstance(data, list):
        return [redact(item, parent_key) for item in data]
    if isinstance(data, str):
        return redact_text(data)
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        found = classify(str(key), parent_key, data)
        if found is not None and value not in (None, "", [], {}):
            out[key] = placeholder(found)
        else:
            out[key] = redact(value, str(key))
    return out


def sensitive_values(data: Any, parent_key: str | None = None) -> set[str]:
    """Every string (and number, as text) under a sensitive key of JSON data."""
    found: set[str] = set()
    if isinstance(data, list):
        for item in data:
            found |= sensitive_values(item, parent_key)
    elif isinstance(data, dict):
        for key, value in data.items():
            if classify(str(key), parent_key, data) is not None:
                found |= _leaves(value)
            else:
                found |= sensitive_values(value, str(key))
    return {v for v in found if len(v) >= VALUE_CHARS_MIN}


def _leaves(data: Any) -> set[str]:
    if isinstance(data, dict):
        return {leaf for value in data.values() for leaf in _leaves(value)}
    if isinstance(data, list):
        return {leaf for item in data for leaf in _leaves(item)}
    if isinstance(data, bool) or data is None:
        return set()
    return {str(data)}


def redact_text(text: str, values: Iterable[str] = ()) -> str:
    """`text` without the given sensitive values (longest first, so a value that contains
    another goes whole), e-mail addresses, and credentials."""
    for value in sorted(set(values), key=len, reverse=True):
        if len(value) >= VALUE_CHARS_MIN:
            text = text.replace(value, MASKED_VALUE)
            text = text.replace(repr(value)[1:-1], MASKED_VALUE)  # as an error quotes it
    text = _EMAIL.sub(placeholder(Sensitivity.EMAIL), text)
    return mask_secrets(text)



def payload_values(body: bytes) -> set[str]:
    """The sensitive values of a JSON (or JSON lines) body; none when it is not JSON. For
    scrubbing the text of an error about that body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return set()
    found: set[str] = set()
    for chunk in [text, *text.splitlines()] if "\n" in text.strip() else [text]:
        try:
            found |= sensitive_values(json.loads(chunk))
        except (ValueError, RecursionError):
            continue
    return found
