"""Customer exemption certificates.

Rules:
- A certificate exempts one customer in one jurisdiction over `[valid_from, valid_to)`
  (half-open; no `valid_to`: until revoked). A document dated inside it is `exempt` (tax 0,
  the jurisdiction line says so); outside it, the document is taxed as usual.
- A revoked certificate exempts nothing quoted afterwards; what was committed stays.
- A certificate's id is unique; its dates and lengths (ids up to 255 characters) are
  checked when it is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from finsync.systems.tax.errors import CertificateError

ID_MAX_CHARS = 255  # the columns' lengths
JURISDICTION_MAX_CHARS = 16


@dataclass(frozen=True, slots=True)
class ExemptionCertificate:
    id: str
    customer_id: str
    jurisdiction: str
    valid_from: date
    valid_to: date | None = None
    revoked: bool = False

    def __post_init__(self) -> None:
        if not self.id or not self.customer_id or not self.jurisdiction:
            raise CertificateError("a certificate needs an id, a customer and a jurisdiction")
        for name, value, limit in (("id", self.id, ID_MAX_CHARS),
                                   ("customer", self.customer_id, ID_MAX_CHARS),
                                   ("jurisdiction", self.jurisdiction, JURISDICTION_MAX_CHARS)):
            if len(value) > limit:
                raise CertificateError(f"certificate {name} is longer than {limit} characters")
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise CertificateError(f"certificate {self.id}: valid_to {self.valid_to} must be "
                                   f"after valid_from {self.valid_from}")

    def covers(self, customer_id: str, jurisdiction: str, on: date) -> bool:
        return (not self.revoked and self.customer_id == customer_id
                and self.jurisdiction == jurisdiction and self.valid_from <= on
                and (self.valid_to is None or on < self.valid_to))


def covering(certificates: Iterable[ExemptionCertificate], customer_id: str,
             jurisdiction: str, on: date) -> ExemptionCertificate | None:
    """The first certificate (by id) that exempts the customer there on that day."""
    found = sorted((c for c in certificates if c.covers(customer_id, jurisdiction, on)),
                   key=lambda c: c.id)
    return found[0] if found else None
