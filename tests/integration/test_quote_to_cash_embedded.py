"""CPQ versions through a real hub into embedded billing, on SQLite and PostgreSQL: each
approved version is ordered (q2c's billing target and order desk) from the embedded
subscription platform, billing's own contract events come back through its outbox, and the
hub's version check finds billing's contract equal to every order (no exception).
This is the seam between the hub's translation and the embedded port; the demo's
reference workflow from CPQ covers the books."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from finsync.connectors.embedded.billing import OutboxPublisher
from finsync.connectors.embedded.subscription_platform import EmbeddedSubscriptionPlatform
from finsync.domain import codec
from finsync.domain.commercial import CommercialContract, CommercialKind
from finsync.domain.events import BusinessDomain, CommercialContractApproved
from finsync.domain.status import OrderState
from finsync.hub import catalog_map
from finsync.hub.catalog_map import Known
from finsync.hub.order_desk import OrderDesk
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.hub.target import billing_target
from finsync.storage import cpq_log, exception_log
from finsync.storage.db import reading
from finsync.systems.billing.service import BillingService
from tests import q2ckit
from tests.builders import envelope
from tests.contract.subscription_platform_port import ACME, ctx
from tests.hubkit import Clock, ingest, make_hub
from tests.unit.billing.servicekit import service as billing_on

SHIPPED = (Path(__file__).parents[2] / "src/finsync/default_cpq_catalog.toml").read_text()
OWNERSHIP = {d: "billing" for d in BusinessDomain} | {BusinessDomain.COMMERCIAL: "cpq"}
ROUTES = {"commercial_contract.approved": ("billing",)}
UPGRADE, RENEWED_END = date(2026, 5, 15), date(2028, 1, 1)


def _hub(engine: Engine, tmp_path: Path, billing: BillingService) -> Hub:
    clock = Clock()
    settings = HubSettings(OWNERSHIP, ROUTES, DeliveryPolicy(  # type: ignore[arg-type]
        attempts_max=5, backoff_base_s=1, backoff_cap_s=60, lease_s=30, batch_size=20),
        gap_wait_s=300, intake_batch_size=50)
    port = EmbeddedSubscriptionPlatform("billing", billing)
    port.upsert_customer(ACME, ctx("k-customer"))  # the customer master's, delivered before
    return make_hub(engine, tmp_path, clock=clock, hub_settings=settings,
                    targets={"billing": billing_target(port, OrderDesk(engine, clock))})


def _approve(hub: Hub, billing: BillingService, version: CommercialContract) -> None:
    """CPQ approves `version`; the hub orders it; billing's events come back."""
    event = CommercialContractApproved(version)
    ref = event.aggregate()
    ingest(hub, [json.dumps(envelope(
        event.name, f"cpq-{ref.id}-{ref.version}", (ref.type, ref.id, ref.version),
        codec.encode_event(event), correlation_id=version.quote_id, source="cpq")).encode()])
    hub.run_until_idle()
    OutboxPublisher(billing).publish(lambda bodies: ingest(hub, list(bodies)))
    hub.run_until_idle()


def test_every_cpq_version_lands_in_billing_as_ordered(engine: Engine, tmp_path: Path) -> None:
    billing = billing_on(engine)
    hub = _hub(engine, tmp_path, billing)
    catalog_map.load(engine, SHIPPED, "shipped.toml", Known(), hub.clock)
    v1 = q2ckit.contract(1, q2ckit.seats(500))
    v2 = q2ckit.contract(2, q2ckit.seats(800), q2ckit.analytics(start=UPGRADE),
                         effective=UPGRADE, uplift="5")  # renews at 126.00 and 25,200.00
    v3 = q2ckit.renewed(v2, 3, q2ckit.seats(800, "126.00", start=q2ckit.TERM_END,
                                           end=RENEWED_END),
                        q2ckit.analytics("25200.00", start=q2ckit.TERM_END, end=RENEWED_END))
    v4 = replace(v3, version=4, kind=CommercialKind.CANCELLATION, quote_id="Q-CPQ-C1-4",
                 effective_date=date(2027, 7, 1),  # quoted as CPQ does: every line at zero
                 lines=tuple(replace(x, quantity=0) for x in v3.lines))
    for version in (v1, v2, v3, v4):
        _approve(hub, billing, version)
    _approve(hub, billing, v2)  # re-sent: a duplicate, ordered once
    with reading(engine) as conn:
        states = [(r.quote_id, r.state) for r in cpq_log.orders_of(conn, "CPQ-C1")]
        problems = [r["summary"] for r in exception_log.listing(conn)
                    if r["status"] in ("open", "retrying")]
    assert problems == []
    assert states == [(v.quote_id, OrderState.APPLIED) for v in (v1, v2, v3, v4)]
    # the upgrade's proration, once: 22783.56 + 15189.04 (tests/contract's working)
    # and the renewal's year at 800 x 126.00 + 25,200.00 = 126,000.00, billed by billing's
    # clock on 2027-01-01 (not run here): the invoices so far are the order's own
    assert [(i.correlation_id, str(i.subtotal.amount)) for i in billing.invoices()] == [
        ("Q-CPQ-C1-1", "60000.00"), ("Q-CPQ-C1-2", "37972.60")]
    assert billing.state().subscriptions[0].contract.end_date == date(2027, 7, 1)
