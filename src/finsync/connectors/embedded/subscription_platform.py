"""The embedded billing platform as the subscription platform the commercial layer orders
from (`SubscriptionPlatformPort`).

Rules:
- `apply_order` reads billing's contract, finds out whether the order is already there, and
  if not issues the one billing command that makes the contract what the order says
  (`order_plan`): `CreateSubscription` (correlated to the order id), `AmendSubscription`,
  `RenewSubscription` or `CancelSubscription` (the order id their amendment id). Billing
  prices and invoices the change; nothing here computes money.
- Idempotent by the order id, answered by billing's own state, so that it holds after a
  crash between billing's commit and the hub's record: an amendment, renewal or
  cancellation is the contract version whose amendment id is the order id; a new order is
  version 1 of its contract (the contract id is the commercial contract's, and only a new
  order makes version 1). A renewal billing's clock made before the order came answers
  the order: the version that starts the order's term, as billing made it (it is not
  compared here: the receipt names its correlation id, `ANSWERED_AS`, and the hub checks
  it against the order, mismatch and all). The same delivery carries the same order, so the
  delivery key needs no record of its own: `find_receipt` answers None (billing keeps no
  delivery keys) and the hub asks `apply_order` again, which answers the first receipt.
- A concurrent apply of the same order that commits first makes billing refuse the second
  as a duplicate id; that refusal reads back the version the first made.
- The version the order made is compared with the order (`order_plan.differences`): a
  difference after billing accepted the command is a defect of the translation, raised as
  `connectors.ports.OrderNotAppliedError` (`master_data_mismatch`, naming the lines),
  never a silent receipt.
- The receipt: external id = billing's contract id, detail `version` = the contract version
  the order made (for an order billing already was, the version in force).
- Billing refusing the command is an `OrderRefusedError` carrying the rule's code and
  exception class (as `usage` and `held` translate them); an order billing cannot express
  is an `order_plan.OrderMismatchError`; an amendment, renewal or cancellation of a
  contract billing does not have is one too (`unknown_contract`); billing's database
  failing is a `TransientError`, and so is a customer billing does not know yet (class
  `sequencing_error`: the customer master's `customer.upserted` is another aggregate, with
  no order to the commercial contract's, and may still be on its way).
- A renewal is billing's renewal from its baseline, at the unit prices the order renews
  lines at (an uplift CPQ applied: `RenewSubscription.unit_prices`); a renewal that adds,
  drops or re-quantifies lines is `renewal_terms`.
- `upsert_customer` registers the customer: name, postal address, tax id and tax address
  (country, region) as the customer master says; an existing customer keeps billing's
  legal entity and currency (its contracts and documents are in them) and its cross-
  references (the master's new ones are added). Billing's checks of tax master data apply.
  A master version older than billing's changes nothing.
- `contract` is billing's current version, prices per unit per the price's frequency.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sqlalchemy.exc import DBAPIError

from finsync.connectors.embedded.order_plan import (
    OrderMismatchError,
    as_cancelled,
    check_order,
    differences,
    plan_amendment,
    plan_cancellation,
    plan_new,
    renewal_prices,
)
from finsync.connectors.ports import (
    ANSWERED_AS,
    DeliveryContext,
    OrderNotAppliedError,
    Receipt,
    Reference,
)
from finsync.domain.commercial import CommercialKind, SubscriptionOrder
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.errors import DomainError, ExceptionClass, PermanentError, TransientError
from finsync.domain.party import CustomerAccount
from finsync.domain.refs import ExternalRefs
from finsync.systems.billing import store
from finsync.systems.billing import tables as t
from finsync.systems.billing.errors import (
    BillingError,
    BillingStorageError,
    DuplicateIdError,
    UnknownCustomerError,
)
from finsync.systems.billing.handler import Command, RegisterCustomer, handle
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingState, Subscription
from finsync.systems.billing.subscription import RENEWAL_REASON, RenewSubscription

CONTRACT = "subscription_contract"
CUSTOMER = "customer"


class OrderRefusedError(PermanentError):
    """Billing refused the command of an order or a customer; `code` is the rule's."""

    def __init__(self, error: BillingError) -> None:
        super().__init__(f"{error.code}: {error}", exception_class=error.exception_class)
        self.code = error.code


class EmbeddedSubscriptionPlatform:
    def __init__(self, system: str, service: BillingService) -> None:
        self.system, self._service = system, service

    # -- orders ------------------------------------------------------------------------
    def apply_order(self, order: SubscriptionOrder, ctx: DeliveryContext) -> Receipt:
        check_order(order)
        sub = self._subscription(order.contract_id)
        before = _renewed_before(order, sub)
        if before is not None:
            return Receipt(before.contract.id,
                           (Reference(order.contract_id, CONTRACT, before.contract.id),),
                           {"version": str(before.version), ANSWERED_AS: before.id})
        made = _made_by(order, sub)
        if made is None:
            made = self._apply(order, sub)
        found = differences(as_cancelled(order, made), made, _compared_from(order))
        if found:
            raise OrderNotAppliedError(order, found)
        return Receipt(made.id, (Reference(order.contract_id, CONTRACT, made.id),),
                       {"version": str(made.version)})

    def _apply(self, order: SubscriptionOrder,
               sub: Subscription | None) -> SubscriptionContract:
        try:
            command = self._plan(order, sub)
        except BillingError as exc:
            raise OrderRefusedError(exc) from exc
        except DomainError as exc:  # an order no contract can be made of
            raise OrderMismatchError("invalid_order", f"order {order.id}: {exc}") from exc
        if command is None:  # billing already is what the order says
            assert sub is not None
            return sub.contract
        try:
            self._service.execute(command)
        except DuplicateIdError:
            pass  # the same order committed first (a concurrent apply): read what it made
        except UnknownCustomerError as exc:  # its customer.upserted may not have come yet
            raise TransientError(f"order {order.id}: {exc}",
                                 exception_class=ExceptionClass.SEQUENCING_ERROR) from exc
        except BillingError as exc:
            raise OrderRefusedError(exc) from exc
        except BillingStorageError as exc:
            raise TransientError(f"billing could not apply order {order.id}: {exc}") from exc
        made = _made_by(order, self._subscription(order.contract_id))
        if made is None:
            raise PermanentError(f"billing accepted order {order.id} but holds no version "
                                 "made by it", exception_class=ExceptionClass.INTERNAL_ERROR)
        return made

    def _plan(self, order: SubscriptionOrder, sub: Subscription | None) -> Command | None:
        config = self._service.config
        if order.kind is CommercialKind.NEW:
            return plan_new(order, config.catalog)
        if sub is None:
            raise OrderMismatchError("unknown_contract", f"order {order.id} is a "
                                     f"{order.kind.value} of contract {order.contract_id}, "
                                     "which billing does not have")
        if order.kind is CommercialKind.AMENDMENT:
            return plan_amendment(order, sub, config.downgrade_policy)
        if order.kind is CommercialKind.CANCELLATION:
            return plan_cancellation(order, sub)
        return self._plan_renewal(order, sub)

    def _plan_renewal(self, order: SubscriptionOrder, sub: Subscription) -> Command:
        """Billing renews from its renewal baseline: the order must be that renewal."""
        current = sub.contract
        if order.start_date != current.end_date:
            raise OrderMismatchError("renewal_term", f"order {order.id} renews from "
                                     f"{order.start_date}; billing's term ends "
                                     f"{current.end_date}")
        alone = BillingState(self._service.config, subscriptions=(sub,))

        def renewed_by(command: RenewSubscription) -> SubscriptionContract:
            return handle(alone, command).state.subscription(current.id).contract

        baseline = renewed_by(RenewSubscription(current.id, order.id))
        command = RenewSubscription(current.id, order.id, renewal_prices(order, baseline))
        renewed = renewed_by(command)
        found = differences(order, renewed, order.start_date)
        if found:
            raise OrderMismatchError("renewal_terms", f"order {order.id} is not the renewal "
                                     f"billing makes from its baseline: {'; '.join(found)}")
        return command

    def _subscription(self, contract_id: str) -> Subscription | None:
        selection = replace(store.NOTHING, subscriptions=t.subscriptions.c.id == contract_id)
        try:
            with self._service.engine.connect() as conn:
                state = store.load(conn, self._service.config, selection)
        except DBAPIError as exc:
            raise TransientError(f"billing could not read contract {contract_id}: "
                                 f"{exc.orig}") from exc
        return next(iter(state.subscriptions), None)

    # -- customers ---------------------------------------------------------------------
    def upsert_customer(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt:
        try:
            existing: CustomerAccount | None = self._service.customer(customer.id)
        except UnknownCustomerError:
            existing = None
        except BillingStorageError as exc:
            raise TransientError(f"billing could not read customer {customer.id}: "
                                 f"{exc}") from exc
        registered = customer if existing is None else _as_master_says(existing, customer)
        if registered != existing:
            self._register(registered)
        return Receipt(registered.id, (Reference(customer.id, CUSTOMER, registered.id),),
                       {"version": str(registered.version)})

    def _register(self, customer: CustomerAccount) -> None:
        try:
            self._service.execute(RegisterCustomer(customer))
        except BillingError as exc:
            raise OrderRefusedError(exc) from exc
        except BillingStorageError as exc:
            raise TransientError(f"billing could not register customer {customer.id}: "
                                 f"{exc}") from exc

    # -- reads -------------------------------------------------------------------------
    def contract(self, contract_id: str) -> SubscriptionContract | None:
        sub = self._subscription(contract_id)
        return None if sub is None else sub.contract

    def find_receipt(self, key: str) -> Receipt | None:
        return None  # billing keeps no delivery keys: the order id is its idempotency key


def _made_by(order: SubscriptionOrder, sub: Subscription | None) -> SubscriptionContract | None:
    """The contract version `order` made in billing, None when it made none yet."""
    if sub is None:
        return None
    if order.kind is CommercialKind.NEW:
        first = sub.history[0].contract
        found = differences(order, first, order.start_date)
        if found:
            raise OrderMismatchError("contract_exists", f"order {order.id}: billing has "
                                     f"contract {order.contract_id} already, other than "
                                     f"ordered: {'; '.join(found)}")
        return first
    for amendment in sub.amendments:
        if amendment.id == order.id:
            return amendment.contract
    return None


def _renewed_before(order: SubscriptionOrder,
                    sub: Subscription | None) -> ContractAmendment | None:
    """The renewal billing made before a renewal order came (its clock's, or another
    quote's): the renewal starting the order's term that the order did not make; None
    otherwise."""
    if order.kind is not CommercialKind.RENEWAL or sub is None:
        return None
    if any(amendment.id == order.id for amendment in sub.amendments):
        return None
    return next((amendment for amendment in sub.amendments
                 if amendment.reason == RENEWAL_REASON
                 and amendment.contract.start_date == order.start_date), None)


def _compared_from(order: SubscriptionOrder) -> date:
    """A new term is compared whole; a change from its effective date."""
    if order.kind in (CommercialKind.NEW, CommercialKind.RENEWAL):
        return order.start_date
    return order.effective_date


def _as_master_says(existing: CustomerAccount, master: CustomerAccount) -> CustomerAccount:
    if master.version < existing.version:  # an older version of the master: billing is newer
        return existing
    refs = ExternalRefs.of({**master.refs, **existing.refs})
    return replace(existing, name=master.name, billing_country=master.billing_country,
                   billing_region=master.billing_region, tax_id=master.tax_id,
                   address=master.address, version=master.version, refs=refs)
