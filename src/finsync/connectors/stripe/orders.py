"""A Stripe account as the subscription platform (`SubscriptionPlatformPort`): the
commercial layer's orders become subscriptions, and the customer master's customers
become Stripe customers, through Stripe's API.

Rules:
- Idempotent three times over. By the delivery key: the receipt of a key is kept
  (`stripe_links`, kind receipt) and answered again. By the order id, whatever the key:
  before writing, the subscription is read back and its metadata (`order_params.META_*`:
  the quote id and CPQ version last applied) says whether this order, or a later version,
  is already there; then nothing is written. And each write carries an `Idempotency-Key`
  derived from the order id, the step and the request (`Request.key`), so a write repeated
  after an uncertain outcome within Stripe's retention is one write.
- Stripe ids are found from canonical ids: the link kept when this port made the object,
  else Stripe's own record: a contract's subscription among its customer's subscriptions
  (listed, with cancelled ones) by `metadata.finsync_contract_id`; a customer by
  `metadata.finsync_customer_id` through Stripe's search, and for `contract` a
  subscription by its contract id likewise (an emulator without search answers 404: then
  only the link finds it).
- Orders in version order: an order whose CPQ version is below the subscription's is
  answered with the receipt of what is there (applied before); another quote at the same
  version is a `master_data_mismatch`; a customer version older than Stripe's is not
  written back over it.
- A customer not yet at Stripe when its order comes is a `TransientError` (its
  `customer.upserted` may still be on its way); a contract not at Stripe when its
  amendment comes, a subscription the order did not make, a price Stripe does not sell at
  the order's net price, currency and interval, are `PermanentError`s of class
  `master_data_mismatch`, raised before anything is written. Stripe's own refusals
  (`client`): 4xx about the request are `master_data_mismatch` with Stripe's code; 429,
  5xx, timeouts and lost connections are transient.
- `contract` reads the subscription back as `contracts.contract` maps it, in canonical
  ids: the contract id, its customer's canonical id, each line's id (item metadata) and
  billing's price id; its version is the CPQ version last applied.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from finsync.connectors.ports import DeliveryContext, Receipt, Reference
from finsync.connectors.stripe import contracts, order_params
from finsync.connectors.stripe import currency as stripe_currency
from finsync.connectors.stripe.client import StripeClient, StripeRefusedError
from finsync.connectors.stripe.objects import Obj, SourceSettings, child
from finsync.connectors.stripe.order_params import (
    META_CONTRACT,
    META_CUSTOMER,
    META_CUSTOMER_VERSION,
    META_QUOTE,
    META_VERSION,
    OrderSettings,
    Request,
    refusal,
)
from finsync.connectors.stripe.state import links, unit
from finsync.domain.commercial import CommercialKind, SubscriptionOrder
from finsync.domain.contract import SubscriptionContract
from finsync.domain.errors import TransientError
from finsync.domain.party import CustomerAccount

CUSTOMER, SUBSCRIPTION, RECEIPT = "customer", "subscription", "receipt"
_INTERVALS = {1: ("month", 1), 3: ("month", 3), 12: ("year", 1)}


class StripeSubscriptionPlatform:
    """`connect` makes the API client on first use (its key is read then: a configuration
    that only reads Stripe's books needs none)."""

    def __init__(self, system: str, source: str, connect: Callable[[], StripeClient],
                 engine: Engine, mapping: SourceSettings, settings: OrderSettings,
                 clock: Callable[[], datetime]) -> None:
        self.system, self._source, self._connect, self._engine = system, source, connect, engine
        self._mapping, self._settings, self._clock = mapping, settings, clock
        self._made: StripeClient | None = None

    @property
    def _client(self) -> StripeClient:
        if self._made is None:
            self._made = self._connect()
        return self._made

    # -- the port ---------------------------------------------------------------------------

    def apply_order(self, order: SubscriptionOrder, ctx: DeliveryContext) -> Receipt:
        kept = self.find_receipt(ctx.delivery_key)
        if kept is not None:
            return kept
        receipt = self._apply(order)
        self._link(RECEIPT, ctx.delivery_key, receipt.external_id, detail_json(receipt))
        return receipt

    def upsert_customer(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt:
        kept = self.find_receipt(ctx.delivery_key)
        if kept is not None:
            return kept
        stripe_id = self._customer_id(customer.id)
        if stripe_id is None:
            made = self._write(order_params.customer_create(customer),
                               f"{customer.id}-v{customer.version}")
            stripe_id = str(made["id"])
            self._link(CUSTOMER, customer.id, stripe_id)
        else:
            self._update_customer(customer, stripe_id)
        receipt = Receipt(stripe_id, (Reference(customer.id, CUSTOMER, stripe_id),),
                          {"version": str(customer.version)})
        self._link(RECEIPT, ctx.delivery_key, stripe_id, detail_json(receipt))
        return receipt

    def contract(self, contract_id: str) -> SubscriptionContract | None:
        sub_id = self._linked(SUBSCRIPTION, contract_id) or self._searched(
            "subscriptions", META_CONTRACT, contract_id)
        if sub_id is None:
            return None
        sub = self._client.fetch("subscription", sub_id)
        return self._canonical(contract_id, sub)

    def find_receipt(self, key: str) -> Receipt | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(links.c.stripe_id, links.c.detail).where(
                links.c.source == self._source, links.c.kind == RECEIPT,
                links.c.key == key)).first()
        if row is None:
            return None
        return receipt_of(row.stripe_id, row.detail)

    # -- orders -----------------------------------------------------------------------------

    def _apply(self, order: SubscriptionOrder) -> Receipt:
        today = self._clock().astimezone(UTC).date()
        order_params.check_expressible(order, today)
        customer = self._customer_id(order.customer_id)
        if customer is None:
            raise TransientError(f"customer {order.customer_id} of order {order.id} is not "
                                 "at Stripe yet (its customer.upserted has not reached it)")
        sub = self._subscription(order.contract_id, customer)
        if sub is not None:
            done = self._applied(order, sub)
            if done is not None:
                return done
        if order.kind is CommercialKind.NEW:
            if sub is not None:
                raise refusal("quote_conflict",
                              f"order {order.id} is new, but contract {order.contract_id} "
                              f"is at Stripe already ({sub.get('id')}, quote "
                              f"{child(sub, 'metadata').get(META_QUOTE)})")
            self._check_prices(order)
            made = self._write(order_params.create(order, customer, self._settings, today),
                               order.id)
            self._link(SUBSCRIPTION, order.contract_id, str(made["id"]))
            return self._receipt(order, made)
        if sub is None:
            raise refusal("unknown_contract",
                          f"order {order.id} ({order.kind.value}) names contract "
                          f"{order.contract_id}, which is not at Stripe")
        if order.kind is CommercialKind.CANCELLATION:
            return self._receipt(order, self._write(order_params.cancel(order, sub, today),
                                                    order.id))
        self._check_prices(order)
        changed = self._write(order_params.change(order, sub, self._settings, today), order.id)
        return self._receipt(order, changed)

    def _applied(self, order: SubscriptionOrder, sub: Obj) -> Receipt | None:
        """The receipt of what is there when this order (or a later version) already is."""
        meta = child(sub, "metadata")
        if order.kind is CommercialKind.CANCELLATION and sub.get("status") == "canceled":
            return self._receipt(order, sub)
        if meta.get(META_QUOTE) == order.id:
            return self._receipt(order, sub)  # its metadata landed with its change
        version = str(meta.get(META_VERSION) or "0")
        held = int(version) if version.isdigit() else 0
        if held > order.cpq_version:
            return self._receipt(order, sub)  # a later version is there: this one was
        if held == order.cpq_version:
            raise refusal("quote_conflict",
                          f"order {order.id} is version {order.cpq_version} of contract "
                          f"{order.contract_id}, which Stripe holds as quote "
                          f"{meta.get(META_QUOTE)}")
        return None

    def _receipt(self, order: SubscriptionOrder, sub: Obj) -> Receipt:
        sub_id = str(sub["id"])
        meta = child(sub, "metadata")
        held = str(meta.get(META_VERSION) or "0")
        # a cancellation leaves the metadata as it was: the version is the order's then
        version = str(max(int(held) if held.isdigit() else 0, order.cpq_version))
        return Receipt(sub_id, (Reference(order.contract_id, SUBSCRIPTION, sub_id),),
                       {"version": version, "quote_id": order.id,
                        "status": str(sub.get("status") or "")})

    def _subscription(self, contract_id: str, customer: str) -> Obj | None:
        """The contract's subscription as Stripe holds it now, None when there is none."""
        sub_id = self._linked(SUBSCRIPTION, contract_id)
        if sub_id is not None:
            return self._client.fetch("subscription", sub_id)
        listed = self._client.list_all("/v1/subscriptions", [("customer", customer),
                                                             ("status", "all")])
        mine = [s for s in listed if child(s, "metadata").get(META_CONTRACT) == contract_id]
        if not mine:
            return None
        found = min(mine, key=lambda s: (int(s.get("created") or 0), str(s["id"])))
        self._link(SUBSCRIPTION, contract_id, str(found["id"]))
        return self._client.fetch("subscription", str(found["id"]))

    def _check_prices(self, order: SubscriptionOrder) -> None:
        """Every line's Stripe price sells at the line's net price, currency and the
        order's interval; else `master_data_mismatch` naming the line."""
        seen: dict[str, Mapping[str, Any]] = {}
        interval = _INTERVALS[order.billing_frequency.months]
        for line in order.lines:
            if line.quantity == 0:
                continue
            stripe_id = self._settings.stripe_price(line.price_id)
            if stripe_id not in seen:
                seen[stripe_id] = self._price(stripe_id, order, line.line_id)
            price = seen[stripe_id]
            recurring = child(price, "recurring") or price
            sold = (str(price.get("currency", "")).upper(), _units(price),
                    (recurring.get("interval"), recurring.get("interval_count") or 1))
            wanted = (order.currency,
                      line.unit_price.amount.scaleb(stripe_currency.exponent(order.currency)),
                      interval)
            if sold != wanted:
                raise refusal("price_mismatch",
                              f"order {order.id} line {line.line_id}: Stripe price "
                              f"{stripe_id} sells {sold[1]} {sold[0]} every {sold[2][1]} "
                              f"{sold[2][0]}, the order asks {wanted[1]} {wanted[0]} every "
                              f"{wanted[2][1]} {wanted[2][0]} (minor units)")

    def _price(self, stripe_id: str, order: SubscriptionOrder, line_id: str) -> Obj:
        kind = "plans" if self._settings.price_parameter == "plan" else "prices"
        try:
            return self._client.get(f"/v1/{kind}/{urllib.parse.quote(stripe_id, safe='')}", [])
        except StripeRefusedError as exc:
            if exc.status != 404:
                raise
            raise refusal("unknown_price", f"order {order.id} line {line_id}: Stripe does not sell "
                          f"{stripe_id} ({exc})") from exc

    # -- customers --------------------------------------------------------------------------

    def _update_customer(self, customer: CustomerAccount, stripe_id: str) -> None:
        held = self._client.get(f"/v1/customers/{stripe_id}", [])
        version = str(child(held, "metadata").get(META_CUSTOMER_VERSION) or "0")
        if version.isdigit() and int(version) > customer.version:
            return  # a later version of the master is there already
        owner = f"{customer.id}-v{customer.version}"
        self._write(order_params.customer_update(customer, stripe_id), owner)
        if order_params.tax_id(customer) is None:
            return
        path = f"/v1/customers/{stripe_id}/tax_ids"
        page = self._client.get(path, [])
        data = page.get("data")
        tax_ids: list[Obj] = [t for t in data if isinstance(t, Mapping)] \
            if isinstance(data, list) else []
        if page.get("has_more"):
            tax_ids = list(self._client.list_all(path, []))
        added = order_params.tax_id_add(customer, stripe_id, tax_ids)
        if added is not None:
            self._write(added, owner)

    def _customer_id(self, canonical_id: str) -> str | None:
        linked = self._linked(CUSTOMER, canonical_id)
        if linked is not None:
            return linked
        found = self._searched("customers", META_CUSTOMER, canonical_id)
        if found is not None:
            self._link(CUSTOMER, canonical_id, found)
        return found

    def _searched(self, resource: str, key: str, value: str) -> str | None:
        """The oldest `resource` (customers, subscriptions) whose metadata `key` is `value`,
        through Stripe's search (None where there is no search: an emulator's 404)."""
        quoted = value.replace("\\", "\\\\").replace("'", "\\'")
        try:
            found = self._client.get(f"/v1/{resource}/search",
                                     [("query", f"metadata['{key}']:'{quoted}'")])
        except StripeRefusedError as exc:
            if exc.status != 404:
                raise
            return None  # no search here: only the link finds it
        data = found.get("data")
        hits = [c for c in data if isinstance(c, Mapping)
                and child(c, "metadata").get(key) == value] if isinstance(data, list) else []
        if not hits:
            return None
        return str(min(hits, key=lambda c: (int(c.get("created") or 0), str(c["id"])))["id"])

    # -- reading back -----------------------------------------------------------------------

    def _canonical(self, contract_id: str, sub: Obj) -> SubscriptionContract:
        """The subscription as the source maps it (a marked one in canonical ids), with
        what an older mark lacks filled in: the contract id, the customer's canonical id,
        billing's price ids (this port's catalogue)."""
        meta = child(sub, "metadata")
        version = str(meta.get(META_VERSION) or "1")
        mapped = contracts.contract(sub, self._mapping, int(version) if version.isdigit()
                                    else 1)
        lines = tuple(dataclasses.replace(line, price_id=self._settings.billing_price(
            line.price_id)) for line in mapped.lines)
        customer = mapped.customer_id
        if meta.get(META_CUSTOMER) is None:  # marked before subscriptions named it
            customer = self._canonical_customer(customer)
        return dataclasses.replace(mapped, id=contract_id, customer_id=customer, lines=lines)

    def _canonical_customer(self, stripe_id: str) -> str:
        with self._engine.connect() as conn:
            found = conn.execute(select(links.c.key).where(
                links.c.source == self._source, links.c.kind == CUSTOMER,
                links.c.stripe_id == stripe_id)).scalar()
        if found is not None:
            return str(found)
        held = self._client.get(f"/v1/customers/{stripe_id}", [])
        return str(child(held, "metadata").get(META_CUSTOMER) or stripe_id)

    # -- Stripe and the links ---------------------------------------------------------------

    def _write(self, request: Request, owner: str) -> Obj:
        return dict(self._client.send(request.method, request.path, request.params,
                                      request.key(owner)))

    def _linked(self, kind: str, key: str) -> str | None:
        with self._engine.connect() as conn:
            found = conn.execute(select(links.c.stripe_id).where(
                links.c.source == self._source, links.c.kind == kind,
                links.c.key == key)).scalar()
        return None if found is None else str(found)

    def _link(self, kind: str, key: str, stripe_id: str, detail: str = "{}") -> None:
        """Keep a link once; a concurrent copy that kept it first wins (same answer)."""
        try:
            with unit(self._engine) as conn:
                conn.execute(insert(links).values(source=self._source, kind=kind, key=key,
                                                  stripe_id=stripe_id, detail=detail))
        except TransientError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise


def _units(price: Obj) -> Decimal | None:
    """A price's unit amount in Stripe's units (a Plan's `amount`), None when it has none."""
    raw = price.get("unit_amount_decimal")
    if raw is None:
        raw = price.get("unit_amount", price.get("amount"))
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    try:
        return Decimal(raw)
    except ArithmeticError:
        return None


def detail_json(receipt: Receipt) -> str:
    """A receipt's detail and references as kept in `stripe_links` (`receipt_of` reads it)."""
    return json.dumps({"detail": dict(receipt.detail),
                       "references": [[r.canonical_id, r.object_type, r.external_id]
                                      for r in receipt.references]},
                      sort_keys=True, separators=(",", ":"))


def receipt_of(external_id: str, detail: str) -> Receipt:
    held = json.loads(detail)
    return Receipt(external_id, tuple(Reference(*r) for r in held.get("references", [])),
                   dict(held.get("detail", {})))
