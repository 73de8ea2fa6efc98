"""The tax engine's errors.

Rules:
- A request the engine cannot answer is a `TaxRefusedError` (domain.tax) with a code that
  says what master data must change: `unknown_tax_jurisdiction`, `unknown_tax_rate`,
  `unknown_legal_entity`, `invalid_vat_id`, `tax_currency_mismatch`,
  `tax_amount_invalid`.
- Its own refusals (configuration, certificates, commits) are `DomainError`s with codes.
"""

from __future__ import annotations

from finsync.domain.errors import DomainError


class TaxConfigError(DomainError):
    """The tax configuration file (or the tables loaded from it) cannot be used."""

    code = "tax_config_invalid"


class CertificateError(DomainError):
    code = "tax_certificate_invalid"


class UnknownCertificateError(CertificateError):
    code = "tax_certificate_unknown"


class CommitConflictError(DomainError):
    """The same document id committed again with another body."""

    code = "tax_commit_conflict"


class CommitKeyError(DomainError):
    code = "tax_commit_key_invalid"


class DocumentTooLongError(DomainError):
    """A document's id or code longer than the engine's tables hold."""

    code = "tax_document_invalid"


class BreakdownMissingError(DomainError):
    """A document line without the jurisdiction lines the engine needs to record it."""

    code = "tax_breakdown_missing"


class UncommittedInvoiceError(DomainError):
    """A void names an invoice the engine has not committed (yet)."""

    code = "tax_invoice_not_committed"
