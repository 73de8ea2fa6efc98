"""Which request headers a stored raw event keeps.

Rule: an allowlist. A stored raw event keeps only the headers that explain the request
(content type and encoding, user agent), prove or identify it (a signature header, the
idempotency key, a request or correlation id) and date it; every other header is dropped
before the row is written, so a credential a sender puts in any header (`Authorization`,
`Cookie`, `X-Api-Key`, `X-Auth-Token`, a proxy's) never reaches the database. A kept value
that still looks like a credential is masked (`domain.secret`). Names are stored lower case.
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.domain.secret import mask_secrets

STORED_HEADERS = frozenset({
    "content-type",
    "content-encoding",
    "content-length",
    "user-agent",
    "date",
    "stripe-signature",  # verified on the raw bytes; kept so an auditor can verify again
    "finsync-signature",  # the generic CPQ source's (connectors.cpq.signature), likewise
    "idempotency-key",
    "x-request-id",
    "x-correlation-id",
})


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request that its stored raw event keeps (lower-case names)."""
    return {name.lower(): mask_secrets(value) for name, value in headers.items()
            if name.lower() in STORED_HEADERS}
