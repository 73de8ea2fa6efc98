"""The app under fuzz, what it answered, and what it left in its database.

Rules:
- The app is composed as `finsync serve` composes it (`finsync.api.main`): a configuration,
  `build_finance`, `create_app` with its webhooks and limits. During the fuzz the worker is
  left out: the campaign runs the pipeline itself (`Hub.run_until_idle`), on a clock it
  moves, so every run of the suite does the same thing in the same order. Afterwards the
  same hub is served with its supervised pipeline (`Served.with_pipeline`).
- The configuration is small on purpose: a 64 KiB body limit keeps oversized and deeply
  nested bodies cheap to send; the rate limit is lifted (429 is tested on its own).
- Every response is tallied. A 5xx, or a 4xx whose body is not
  `{"error": {"code": <snake_case>}}`, is kept as a sample with the request that caused it.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from finsync.api.app import create_app
from finsync.bootstrap import (
    Finance,
    build_daily,
    build_finance,
    build_held_retry,
    build_metrics,
    build_usage,
    build_webhooks,
)
from finsync.config import FinsyncConfig, parse_config
from finsync.connectors.stripe.signature import header_for
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import BusinessDomain, EventType
from finsync.domain.status import DeliveryStatus, RawStatus
from finsync.hub.intake import refusal_fingerprint
from finsync.storage.schema import deliveries, exceptions, raw_events
from finsync.views.services import build_services
from tests import authkit
from tests.hubkit import Clock

SECRET_ENV, SECRET = "FINSYNC_FUZZ_WHSEC", "whsec_fuzz_current"
BODY_MAX_BYTES = 65_536
CLOCK_AT = datetime.fromisoformat("2026-12-01T09:00:00+00:00")  # after every fixture date
INTAKE = "/v1/sources/{source}/events"
WEBHOOK = "/v1/webhooks/stripe/{source}"
LEDGER_TYPES = (EventType.INVOICE_ISSUED, EventType.CREDIT_MEMO_ISSUED,
                EventType.PAYMENT_APPLIED, EventType.REFUND_ISSUED)
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
SAMPLES_MAX = 12


def fuzz_config(db_url: str, base_dir: Path, **limits: Any) -> FinsyncConfig:
    """A canonical source and a Stripe source, both owned as `stripe`, posting to the
    embedded ledger; `limits` override the fuzz defaults of `[limits.default]`."""
    return parse_config({
        "hub": {"database_url": db_url, "intake_batch_size": 200},
        "delivery": {"attempts_max": 3, "backoff_base_s": 1, "backoff_cap_s": 60,
                     "lease_s": 30, "batch_size": 50},
        "ownership": {d.value: "stripe" for d in BusinessDomain} | {
            "ledger": "ledger", "revenue": "revrec", "tax": "tax"},
        "sources": {"canonical": "canonical", "stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "webhook_secrets": [{"env": SECRET_ENV}],
                              "poll_on_run": False}},
        "limits": {"default": {"body_max_bytes": BODY_MAX_BYTES, "json_depth_max": 32,
                               "json_items_max": 2_000, "requests_per_s": 1_000_000,
                               "burst": 1_000_000} | limits},
        "systems": {"ledger": {"role": "ledger", "connector": "embedded"},
                    "billing": {"role": "billing", "connector": "embedded"},
                    "revrec": {"role": "revenue", "connector": "embedded"}},
        "routes": {t.value: ["ledger"] for t in LEDGER_TYPES},
        "ledger": {"entities": [{"id": "le_us", "name": "Acme US", "functional_currency": "USD",
                                 "fiscal_years": [2026, 2027]}]},
    }, base_dir)


def compose(config: FinsyncConfig, finance: Finance,
            worker_interval_s: float | None = None) -> FastAPI:
    """The app as `finsync.api.main.app_from_environment` composes it; with a worker
    interval it runs the supervised pipeline, as `finsync serve` does."""
    return create_app(finance.hub, worker_interval_s=worker_interval_s,
                      metrics=build_metrics(finance), daily=build_daily(finance),
                      audit=finance.audit, webhooks=build_webhooks(config, finance.hub.engine),
                      limits_for=config.limits_for,
                      usage=build_usage(config, finance.hub.engine, finance.hub.clock),
                      services=build_services(config, finance),
                      held=build_held_retry(finance),
                      # `serve --role all`: an intake node's publisher (NATS) is not fuzzed
                      # here; its refusals are the same checks (tests/integration/
                      # test_raw_publisher.py), its store is JetStream.
                      publisher=None,
                      idle_timeout=timedelta(minutes=config.console.idle_timeout_min),
                      session_lifetime=timedelta(hours=config.console.session_max_h))


@dataclass
class Served:
    app: FastAPI  # without a worker: the campaign runs the pipeline itself
    config: FinsyncConfig
    finance: Finance
    client: TestClient
    clock: Clock

    @contextmanager
    def with_pipeline(self, interval_s: float = 0.05) -> Iterator[TestClient]:
        """The same hub served with its supervised pipeline (`finsync serve`). Call no
        `run_until_idle` of your own meanwhile: the pipeline thread is running it."""
        app = compose(self.config, self.finance, interval_s)
        with TestClient(app, raise_server_exceptions=False,
                        headers=authkit.bearer(authkit.issue(self.finance.hub.engine))
                        ) as client:
            yield client


@contextmanager
def serve(config: FinsyncConfig, engine: Engine) -> Iterator[Served]:
    """The app on `engine` and a clock the campaign moves. The webhook secret must be in
    the environment (`SECRET_ENV`)."""
    clock = Clock(CLOCK_AT)
    finance = build_finance(config, engine=engine, clock=clock)
    app = compose(config, finance)
    # A token with every scope (events:write:* relays for the `stripe` events the canonical
    # source carries): the fuzz is of what an authenticated sender can send.
    token = authkit.bearer(authkit.issue(engine))
    with TestClient(app, raise_server_exceptions=False, headers=token) as client:
        yield Served(app, config, finance, client, clock)


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"stripe-signature": header_for(secret, int(time.time()), body),
            "content-type": "application/json"}


def error_code(response: httpx2.Response) -> str | None:
    """The machine-readable code of an error body, or None when it has none."""
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and CODE.match(code) else None


@dataclass
class Tally:
    """What one campaign sent and what came back."""

    sent: int = 0
    unsendable: int = 0  # refused by the HTTP client itself (never reached the app)
    statuses: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)  # "route status-class"
    codes: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # samples: neither 2xx nor 4xx
    uncoded: list[str] = field(default_factory=list)  # samples: a 4xx without a code

    def record(self, route: str, label: str, body: bytes, response: httpx2.Response) -> None:
        self.sent += 1
        status = response.status_code
        self.statuses[status] += 1
        self.by_route[f"{route} {status // 100}xx"] += 1
        if 200 <= status < 300:
            return
        code = error_code(response)
        path = response.request.url.raw_path.decode("ascii", "replace")  # as sent
        sample = (f"{status} {label} {response.request.method} {path} "
                  f"body[{len(body)}]={body[:120]!r} -> {response.text[:300]!r}")
        if status >= 500 or status < 400:
            _keep(self.server_errors, sample)
        elif code is None:
            _keep(self.uncoded, sample)
        else:
            self.codes[code] += 1

    def classes(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for status, n in self.statuses.items():
            out[f"{status // 100}xx"] += n
        return dict(sorted(out.items()))


def _keep(samples: list[str], sample: str) -> None:
    if len(samples) < SAMPLES_MAX:
        samples.append(sample)


def post(client: TestClient, tally: Tally, route: str, path: str, body: bytes,
         headers: Mapping[str, str] | None = None, label: str = "") -> httpx2.Response | None:
    return _sent(tally, route, label, body,
                 lambda: client.post(path, content=body, headers=dict(headers or {})))


def get(client: TestClient, tally: Tally, route: str, path: str,
        headers: Mapping[str, str] | None = None, label: str = "") -> httpx2.Response | None:
    return _sent(tally, route, label, b"", lambda: client.get(path, headers=dict(headers or {})))


def _sent(tally: Tally, route: str, label: str, body: bytes,
          send: Callable[[], httpx2.Response]) -> httpx2.Response | None:
    try:
        response = send()
    except (httpx2.HTTPError, httpx2.InvalidURL, ValueError, UnicodeError):
        tally.unsendable += 1  # e.g. a header the client cannot encode
        return None
    tally.record(route, label, body, response)
    return response


# -- what the database holds after the campaign ------------------------------------------------

def _attached_raw_ids(engine: Engine) -> set[int]:
    """Raw events an exception names: its `raw_event_id`, `raw_event:<id>` in `objects`, or,
    for an aggregated refusal (which names only its first few), every refused raw event of
    its source and code (`raw_log.refused_ids`)."""
    attached: set[int] = set()
    with engine.connect() as conn:
        fingerprints = set()
        for raw_id, objects, fingerprint in conn.execute(select(
                exceptions.c.raw_event_id, exceptions.c.objects, exceptions.c.fingerprint)):
            fingerprints.add(fingerprint)
            if raw_id is not None:
                attached.add(int(raw_id))
            for ref in json.loads(objects or "[]"):
                kind, _, key = str(ref).partition(":")
                if kind == "raw_event" and key.isdigit():
                    attached.add(int(key))
        refused = conn.execute(select(raw_events.c.id, raw_events.c.source,
                                      raw_events.c.error_code)
                               .where(raw_events.c.status == RawStatus.REJECTED,
                                      raw_events.c.refusals > 0))
        attached.update(int(i) for i, source, code in refused
                        if refusal_fingerprint(source, str(code)) in fingerprints)
    return attached


def unattached_raw_events(engine: Engine) -> list[tuple[int, str, str | None]]:
    """Stored raw events neither mapped nor named by an exception: (id, status, error)."""
    attached = _attached_raw_ids(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(raw_events.c.id, raw_events.c.status,
                                   raw_events.c.error_code)
                            .where(raw_events.c.status != RawStatus.MAPPED)
                            .order_by(raw_events.c.id)).all()
    return [(int(i), str(s), c) for i, s, c in rows if int(i) not in attached]


def stuck_deliveries(engine: Engine, now: datetime) -> list[str]:
    """Deliveries that nothing will move: in flight; pending, due and not held back by an
    earlier unfinished delivery of their aggregate; failed or dead with no exception."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(deliveries).order_by(deliveries.c.id))
                .mappings()]
        excepted = {int(i) for (i,) in conn.execute(
            select(exceptions.c.delivery_id).where(exceptions.c.delivery_id.is_not(None)))}
    unfinished = {DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.FAILED,
                  DeliveryStatus.DEAD}
    seen: set[tuple[str, str]] = set()  # (target, partition) with an earlier unfinished one
    stuck: list[str] = []
    for row in rows:
        status = DeliveryStatus(row["status"])
        lane = (row["target"], row["partition_key"])
        held = lane in seen
        if status in unfinished:
            seen.add(lane)
        if status == DeliveryStatus.IN_FLIGHT:
            stuck.append(f"#{row['id']} in_flight since lease {row['lease_expires_at']}")
        elif status == DeliveryStatus.PENDING and row["next_attempt_at"] <= now and not held:
            stuck.append(f"#{row['id']} pending, due {row['next_attempt_at']}, not taken")
        elif status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD) and row["id"] not in excepted:
            stuck.append(f"#{row['id']} {status} with no exception")
    return stuck


def exception_classes(engine: Engine) -> dict[str, tuple[int, int]]:
    """Exceptions by class: (rows, occurrences summed)."""
    with engine.connect() as conn:
        rows = conn.execute(select(exceptions.c["class"], func.count(),
                                   func.sum(exceptions.c.occurrences))
                            .group_by(exceptions.c["class"])).all()
    return {str(k): (int(n), int(o or n)) for k, n, o in sorted(rows)}


def summaries(engine: Engine, exception_class: ExceptionClass) -> list[str]:
    """The summaries of every exception of one class, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(exceptions.c.summary)
                            .where(exceptions.c["class"] == exception_class)
                            .order_by(exceptions.c.id))
        return [str(summary) for (summary,) in rows]


def largest_stored_body(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(func.length(raw_events.c.body)))).scalar() or 0)


def raw_event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(raw_events)).scalar_one())
