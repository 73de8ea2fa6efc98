"""The commercial layer's hub tables: catalogue map versions, the orders sent to billing,
and each contract's renewal baseline.

Rules:
- A catalogue map version moves only when content does: loading the latest version's
  content again (same digest) returns it; other content gets the next version number.
  Entries of a version never change. Versions are stored one loader at a time.
- One order row per quote id (the order's id): written before the order goes to billing
  (`sent`) or when it cannot be translated (`held`); its body is the order as sent,
  encoded by `domain.codec` and read back by it.
- One renewal baseline per contract: a version replaces it only when it is not older.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from finsync.dbtypes import UtcDateTime
from finsync.domain import codec
from finsync.domain.catalog_map import CatalogEntry, CatalogMap
from finsync.domain.commercial import SubscriptionOrder
from finsync.domain.order_check import RenewalBaseline
from finsync.domain.status import OrderState
from finsync.storage import jsonutil
from finsync.storage.db import serialize
from finsync.storage.schema import deliveries, events, metadata

COMMERCIAL_CONTRACT = "commercial_contract"  # the aggregate type of CPQ versions
CATALOG_LOCK = "cpq_catalog_versions"  # held while a catalogue map version is stored

cpq_catalog_versions = Table(
    "cpq_catalog_versions", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    Column("source", String(1000), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("loaded_at", UtcDateTime, nullable=False),
)

cpq_catalog_entries = Table(
    "cpq_catalog_entries", metadata,
    Column("version", Integer, ForeignKey("cpq_catalog_versions.version"), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("billing_product", String(255), nullable=False),
    Column("prices", Text, nullable=False),  # JSON {currency: billing price id}
    Column("ssp_product", String(255), nullable=False),
    Column("revenue_account", String(255), nullable=False),
    Column("price_months", Integer),  # the months a unit price covers; None: per unit
    PrimaryKeyConstraint("version", "code"),
)

cpq_orders = Table(
    "cpq_orders", metadata,
    Column("quote_id", String(255), primary_key=True),
    Column("contract_id", String(255), nullable=False, index=True),
    Column("cpq_version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # status.OrderState
    Column("catalog_version", Integer),
    Column("delivery_key", String(255)),
    Column("body", Text),  # the order as sent (domain.codec), None while held
    Column("detail", Text),  # why it is held, refused or in mismatch
    # Billing's correlation id of the version that answered the order when it is not the
    # quote id (a renewal billing's clock made before the order came).
    Column("billing_correlation_id", String(255), index=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

cpq_baselines = Table(
    "cpq_baselines", metadata,
    Column("contract_id", String(255), primary_key=True),
    Column("cpq_version", Integer, nullable=False),
    Column("body", Text, nullable=False),  # RenewalBaseline (domain.codec)
    Column("updated_at", UtcDateTime, nullable=False),
)


# -- catalogue map versions ---------------------------------------------------------------

def current_catalog(conn: Connection) -> tuple[int, CatalogMap] | None:
    """The latest catalogue map version and its map; None before any is loaded."""
    version = conn.execute(select(func.max(cpq_catalog_versions.c.version))).scalar()
    if version is None:
        return None
    return int(version), catalog(conn, int(version))


def catalog(conn: Connection, version: int) -> CatalogMap:
    rows = conn.execute(select(cpq_catalog_entries).where(
        cpq_catalog_entries.c.version == version).order_by(cpq_catalog_entries.c.code))
    return CatalogMap(tuple(
        CatalogEntry(code=r.code, billing_product=r.billing_product,
                     prices=tuple(sorted(jsonutil.loads(r.prices).items())),
                     ssp_product=r.ssp_product, revenue_account=r.revenue_account,
                     name=r.name, price_months=r.price_months) for r in rows))


def store_catalog(conn: Connection, content: CatalogMap, digest: str, source: str,
                  at: datetime) -> tuple[int, bool]:
    """`(version, changed)`: the latest version when it holds this content, else a new
    version (content seen before but not the latest, a map rolled back, is a new version
    too: the version says which map is in force). Serialised (`storage.db.serialize`): two
    workers starting with a new map take turns, the second finding the first's version."""
    serialize(conn, CATALOG_LOCK)
    latest = conn.execute(select(cpq_catalog_versions.c.version, cpq_catalog_versions.c.digest)
                          .order_by(cpq_catalog_versions.c.version.desc()).limit(1)).first()
    if latest is not None and latest.digest == digest:
        return int(latest.version), False
    version = 1 if latest is None else int(latest.version) + 1
    conn.execute(insert(cpq_catalog_versions).values(
        version=version, digest=digest, source=source[:1000], entries=len(content.entries),
        loaded_at=at))
    if content.entries:
        conn.execute(insert(cpq_catalog_entries), [
            {"version": version, "code": e.code, "name": e.name,
             "billing_product": e.billing_product, "prices": jsonutil.dumps(dict(e.prices)),
             "ssp_product": e.ssp_product, "revenue_account": e.revenue_account,
             "price_months": e.price_months}
            for e in content.entries])
    return version, True


def catalog_versions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(cpq_catalog_versions).order_by(cpq_catalog_versions.c.version))
    return [dict(r) for r in rows.mappings()]


# -- orders -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OrderRecord:
    quote_id: str
    contract_id: str
    cpq_version: int
    kind: str
    state: OrderState
    catalog_version: int | None
    delivery_key: str | None
    order: SubscriptionOrder | None
    detail: str | None
    updated_at: datetime
    billing_correlation_id: str | None = None


def record_order(conn: Connection, record: OrderRecord) -> None:
    """Write the order row of `record.quote_id` (insert or replace)."""
    values = {
        "contract_id": record.contract_id, "cpq_version": record.cpq_version,
        "kind": record.kind, "state": record.state.value,
        "catalog_version": record.catalog_version, "delivery_key": record.delivery_key,
        "body": None if record.order is None else jsonutil.dumps(codec.encode(record.order)),
        "detail": record.detail, "billing_correlation_id": record.billing_correlation_id,
        "updated_at": record.updated_at}
    done = conn.execute(update(cpq_orders).where(cpq_orders.c.quote_id == record.quote_id)
                        .values(values)).rowcount
    if not done:
        conn.execute(insert(cpq_orders).values(quote_id=record.quote_id, **values))


def set_order_state(conn: Connection, quote_id: str, state: OrderState, detail: str | None,
                    at: datetime, *, unless: tuple[OrderState, ...] = ()) -> bool:
    """Move the order of `quote_id` to `state`, unless it is in one of `unless`; True when
    moved."""
    where = [cpq_orders.c.quote_id == quote_id]
    if unless:
        where.append(cpq_orders.c.state.not_in([s.value for s in unless]))
    done = conn.execute(update(cpq_orders).where(*where).values(
        state=state.value, detail=detail, updated_at=at)).rowcount
    return bool(done)


def set_billing_correlation(conn: Connection, quote_id: str, correlation_id: str,
                            at: datetime) -> None:
    """The order of `quote_id` was answered by billing's version correlated to
    `correlation_id` (one billing made itself)."""
    conn.execute(update(cpq_orders).where(cpq_orders.c.quote_id == quote_id).values(
        billing_correlation_id=correlation_id, updated_at=at))


def order(conn: Connection, quote_id: str) -> OrderRecord | None:
    row = conn.execute(select(cpq_orders).where(cpq_orders.c.quote_id == quote_id)).first()
    return None if row is None else _record(row)


def order_answered_by(conn: Connection, correlation_id: str) -> OrderRecord | None:
    """The order billing answered with its own version correlated to `correlation_id`."""
    row = conn.execute(select(cpq_orders).where(
        cpq_orders.c.billing_correlation_id == correlation_id).order_by(
        cpq_orders.c.cpq_version.desc()).limit(1)).first()
    return None if row is None else _record(row)


def orders_of(conn: Connection, contract_id: str) -> list[OrderRecord]:
    rows = conn.execute(select(cpq_orders).where(cpq_orders.c.contract_id == contract_id)
                        .order_by(cpq_orders.c.cpq_version))
    return [_record(row) for row in rows]


def ordered_quotes(conn: Connection, correlation_ids: set[str]) -> set[str]:
    """Which of these correlation ids name an order: its quote id, or billing's own
    correlation id of the version that answered it."""
    if not correlation_ids:
        return set()
    wanted = sorted(correlation_ids)
    rows = conn.execute(select(cpq_orders.c.quote_id, cpq_orders.c.billing_correlation_id)
                        .where(cpq_orders.c.quote_id.in_(wanted)
                               | cpq_orders.c.billing_correlation_id.in_(wanted)))
    return {str(x) for row in rows for x in row if x is not None} & correlation_ids


def held_delivery_keys(conn: Connection) -> list[str]:
    """The delivery keys of orders held before billing, oldest CPQ version first."""
    rows = conn.execute(select(cpq_orders.c.delivery_key).where(
        cpq_orders.c.state == OrderState.HELD.value,
        cpq_orders.c.delivery_key.is_not(None)).order_by(
        cpq_orders.c.contract_id, cpq_orders.c.cpq_version))
    return [str(key) for (key,) in rows]


def delivery_ids(conn: Connection, keys: list[str]) -> list[int]:
    """The outbox ids of these delivery keys, in the keys' order (unknown keys left out)."""
    if not keys:
        return []
    rows = conn.execute(select(deliveries.c.delivery_key, deliveries.c.id).where(
        deliveries.c.delivery_key.in_(keys)))
    found = {str(key): int(delivery_id) for key, delivery_id in rows}
    return [found[key] for key in keys if key in found]


def _record(row: Any) -> OrderRecord:
    body = None if row.body is None else codec.decode(
        SubscriptionOrder, jsonutil.loads(row.body), "order")
    return OrderRecord(row.quote_id, row.contract_id, row.cpq_version, row.kind,
                       OrderState(row.state), row.catalog_version, row.delivery_key, body,
                       row.detail, row.updated_at, row.billing_correlation_id)


# -- renewal baselines --------------------------------------------------------------------

def store_baseline(conn: Connection, baseline: RenewalBaseline, at: datetime) -> bool:
    """Keep `baseline` unless a later CPQ version's is stored; True when written."""
    stored = conn.execute(select(cpq_baselines.c.cpq_version).where(
        cpq_baselines.c.contract_id == baseline.contract_id)).scalar()
    body = jsonutil.dumps(codec.encode(baseline))
    if stored is None:
        conn.execute(insert(cpq_baselines).values(
            contract_id=baseline.contract_id, cpq_version=baseline.cpq_version, body=body,
            updated_at=at))
        return True
    if int(stored) > baseline.cpq_version:
        return False
    conn.execute(update(cpq_baselines).where(
        cpq_baselines.c.contract_id == baseline.contract_id).values(
        cpq_version=baseline.cpq_version, body=body, updated_at=at))
    return True


def baseline(conn: Connection, contract_id: str) -> RenewalBaseline | None:
    body = conn.execute(select(cpq_baselines.c.body).where(
        cpq_baselines.c.contract_id == contract_id)).scalar()
    if body is None:
        return None
    return codec.decode(RenewalBaseline, jsonutil.loads(body), "baseline")


# -- CPQ versions as accepted -------------------------------------------------------------

def versions_of(conn: Connection, contract_id: str) -> list[dict[str, Any]]:
    """The CPQ versions of a contract the hub holds (any status), in version order."""
    rows = conn.execute(select(
        events.c.event_id, events.c.aggregate_version, events.c.correlation_id,
        events.c.status, events.c.received_at, events.c.source).where(
        events.c.aggregate_type == COMMERCIAL_CONTRACT,
        events.c.aggregate_id == contract_id).order_by(events.c.aggregate_version,
                                                        events.c.position))
    return [dict(r) for r in rows.mappings()]


def deliveries_of(conn: Connection, event_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Event id -> `(target, delivery status)` of each of its deliveries."""
    found: dict[str, list[tuple[str, str]]] = {}
    if not event_ids:
        return found
    rows = conn.execute(select(deliveries.c.event_id, deliveries.c.target,
                               deliveries.c.status).where(
        deliveries.c.event_id.in_(event_ids)).order_by(deliveries.c.id))
    for event_id, target, status in rows:
        found.setdefault(str(event_id), []).append((str(target), str(status)))
    return found


# -- the contracts finance lists ----------------------------------------------------------

def order_counts(conn: Connection) -> dict[OrderState, int]:
    """How many orders (one per CPQ version ordered) are in each state, every state named."""
    rows = conn.execute(select(cpq_orders.c.state, func.count()).group_by(cpq_orders.c.state))
    found = {OrderState(state): int(count) for state, count in rows}
    return {state: found.get(state, 0) for state in OrderState}


def contract_page(conn: Connection, state: OrderState | None, limit: int,
                  offset: int) -> tuple[int, list[dict[str, Any]]]:
    """`(how many contracts match, one page of them)`: the CPQ contracts the hub holds a
    version of (with `state`: those with an order in that state), by contract id; each row
    is the contract's latest version (`contract_id`, `aggregate_version`, `correlation_id`,
    `status`, `received_at`) with `quote_ids`, the correlation ids of all its versions."""
    chosen = select(events.c.aggregate_id.label("contract_id")).where(
        events.c.aggregate_type == COMMERCIAL_CONTRACT).group_by(events.c.aggregate_id)
    if state is not None:
        chosen = chosen.where(events.c.aggregate_id.in_(
            select(cpq_orders.c.contract_id).where(cpq_orders.c.state == state.value)))
    total = int(conn.execute(select(func.count()).select_from(chosen.subquery())).scalar()
                or 0)
    ids = [str(row[0]) for row in conn.execute(
        chosen.order_by(events.c.aggregate_id).limit(limit).offset(offset))]
    if not ids:
        return total, []
    latest: dict[str, dict[str, Any]] = {}
    quotes: dict[str, list[str]] = {contract_id: [] for contract_id in ids}
    rows = conn.execute(select(
        events.c.aggregate_id, events.c.aggregate_version, events.c.correlation_id,
        events.c.status, events.c.received_at).where(
        events.c.aggregate_type == COMMERCIAL_CONTRACT,
        events.c.aggregate_id.in_(ids)).order_by(events.c.aggregate_version,
                                                  events.c.position))
    for row in rows.mappings():
        contract_id = str(row["aggregate_id"])
        latest[contract_id] = {**dict(row), "contract_id": contract_id}
        if row["correlation_id"] not in quotes[contract_id]:
            quotes[contract_id].append(str(row["correlation_id"]))
    return total, [{**latest[c], "quote_ids": quotes[c]} for c in ids]


def orders_of_contracts(conn: Connection, contract_ids: list[str]) -> list[OrderRecord]:
    """The orders of these contracts, by contract then CPQ version."""
    if not contract_ids:
        return []
    rows = conn.execute(select(cpq_orders).where(cpq_orders.c.contract_id.in_(contract_ids))
                        .order_by(cpq_orders.c.contract_id, cpq_orders.c.cpq_version))
    return [_record(row) for row in rows]
