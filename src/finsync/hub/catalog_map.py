"""Loading the catalogue map into the hub's tables (`[cpq] catalog`), checked first.

Rules:
- The file is parsed (`domain.catalog_map.parse`: unknown keys refused) and checked against
  what the other systems know before anything is stored: each billing price exists, is a
  price of the entry's billing product and is in the currency it is listed under; each SSP
  entry is a product the revenue engine knows; each revenue account is in the ERP's chart.
  A system the composition root cannot tell about (Stripe billing, an external ERP) is not
  checked (its `Known` field is None). Every problem is reported at once.
- The catalogue version moves only when content does (`storage.cpq_log.store_catalog`).
- A new version sends the orders held for an unmapped product out again: each held
  delivery is retried under its own delivery key (`storage.outbox.retry_now`), so billing
  still applies each CPQ version once (the order id is its idempotency key), in version
  order (a failed delivery holds back its contract's later ones until then). Its open
  exception becomes `retrying`; the delivery resolves it, or a failure opens it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.domain.catalog_map import CatalogMap, CatalogMapError, digest, parse
from finsync.domain.status import ExceptionStatus
from finsync.hub.receipt_batch import exception_fingerprint
from finsync.storage import cpq_log, exception_log, outbox
from finsync.storage.db import reading, transaction


@dataclass(frozen=True, slots=True)
class Known:
    """What the other systems hold, for the check (None: cannot be told)."""

    prices: Mapping[str, tuple[str, str]] | None = None  # price id -> (product id, currency)
    ssp_products: frozenset[str] | None = None
    revenue_accounts: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class CatalogLoad:
    version: int
    changed: bool
    retried: int  # held orders sent out again


def problems(catalog: CatalogMap, known: Known) -> list[str]:
    """Every way `catalog` disagrees with what the systems know (empty: none)."""
    found: list[str] = []
    for entry in catalog.entries:
        where = f"product {entry.code}"
        for currency, price in entry.prices:
            held = None if known.prices is None else known.prices.get(price)
            if known.prices is not None and held is None:
                found.append(f"{where}: billing has no price {price}")
            elif held is not None and held[0] != entry.billing_product:
                found.append(f"{where}: price {price} is a price of {held[0]}, not of "
                             f"{entry.billing_product}")
            elif held is not None and held[1] != currency:
                found.append(f"{where}: price {price} is in {held[1]}, not {currency}")
        if known.ssp_products is not None and entry.ssp_product not in known.ssp_products:
            found.append(f"{where}: the revenue engine has no SSP entry {entry.ssp_product}")
        if (known.revenue_accounts is not None
                and entry.revenue_account not in known.revenue_accounts):
            found.append(f"{where}: the ERP chart has no revenue account "
                         f"{entry.revenue_account}")
    return found


def load(engine: Engine, text: str, source: str, known: Known,
         clock: Callable[[], datetime]) -> CatalogLoad:
    """Parse, check and store the catalogue map in `text` (read from `source`); a new
    version retries the held orders. `CatalogMapError` names every problem."""
    catalog = parse(text)
    wrong = problems(catalog, known)
    if wrong:
        raise CatalogMapError(f"catalogue map {source}: {'; '.join(wrong)}")
    at = clock()
    with transaction(engine) as conn:
        version, changed = cpq_log.store_catalog(conn, catalog, digest(catalog), source, at)
        retried = _retry_held(conn, at) if changed else 0
    return CatalogLoad(version, changed, retried)


def _retry_held(conn: Connection, at: datetime) -> int:
    """Send every held order out again; its open exception says the hub is retrying it
    (its delivery resolves it, or a failure opens it again)."""
    keys = cpq_log.held_delivery_keys(conn)
    retried = 0
    for delivery_id in cpq_log.delivery_ids(conn, keys):
        retried += outbox.retry_now(conn, delivery_id, at)
    fingerprints = [exception_fingerprint(key) for key in keys]
    for exception_id, status in exception_log.latest_by_fingerprint(conn,
                                                                   fingerprints).values():
        if status is ExceptionStatus.OPEN:
            exception_log.set_status(conn, exception_id, ExceptionStatus.RETRYING, at)
    return retried


def current(engine: Engine) -> tuple[int, CatalogMap]:
    """The catalogue map in force; `CatalogMapError` before one is loaded."""
    with reading(engine) as conn:
        found = cpq_log.current_catalog(conn)
    if found is None:
        raise CatalogMapError("no catalogue map is loaded ([cpq] catalog)")
    return found
