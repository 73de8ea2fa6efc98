"""Customer accounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from finsync.domain.fingerprint import ADDED_LATER
from finsync.domain.money import exponent
from finsync.domain.refs import ExternalRefs
from finsync.domain.tax import TaxAddress


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """A customer's billing address; the country and region are the account's own
    (`billing_country`, `billing_region`), which tax reads."""

    street: tuple[str, ...]
    city: str
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerAccount:
    id: str
    name: str
    legal_entity: str
    currency: str
    billing_country: str
    version: int = 1
    refs: ExternalRefs = field(default_factory=ExternalRefs)
    # Where a country taxes by region (US states): the ISO 3166-2 subdivision code ("NY").
    billing_region: str | None = field(default=None, metadata=ADDED_LATER)
    # The customer's VAT (or other business tax) id: B2B reverse charge needs a valid one.
    tax_id: str | None = field(default=None, metadata=ADDED_LATER)
    # Set by a customer master (a CRM); billing and the ERP keep it as the master says.
    address: PostalAddress | None = field(default=None, metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        exponent(self.currency)

    def tax_address(self) -> TaxAddress:
        return TaxAddress(self.billing_country, self.billing_region)


class PartyOutcome(StrEnum):
    """What an ERP did with a version of the customer master (`PartyPort.upsert_party`,
    told in its receipt's detail as `outcome`)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the party holds this version already (a redelivery)
    STALE = "stale"  # older than the version the party holds: nothing written
