"""One fuzz campaign against a served app: what is sent, in what order, and what is read
back afterwards for the tests to judge.

Rules:
- Phases, in order: hand-picked probes (corpus), unknown sources, a control character in
  every string field, schemathesis from the app's OpenAPI, hypothesis mutants of canonical
  envelopes and of signed Stripe events, then duplicates with a changed amount.
- The pipeline runs every `RUN_EVERY` requests, as a served worker would, so intake and
  processing interleave. An error it raises is counted (the campaign goes on to the end:
  the tests say what broke), never hidden.
- Afterwards the clock moves in steps past every lease and back-off and the pipeline runs
  after each step. Then the same hub is served with its supervised pipeline, as `finsync
  serve` runs it: one valid event per route is sent to it and must reach the ledger, and
  its `/healthz` is read.
- `scale` sizes the generated phases (the corpus and the sweep always run whole).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import select

from finsync.domain.errors import ExceptionClass
from finsync.domain.status import DeliveryStatus
from finsync.storage.schema import deliveries, events
from tests.fuzz import corpus, openapi
from tests.fuzz.fuzzkit import (
    INTAKE,
    SECRET,
    WEBHOOK,
    Served,
    Tally,
    error_code,
    exception_classes,
    get,
    largest_stored_body,
    post,
    raw_event_count,
    signed,
    stuck_deliveries,
    summaries,
    unattached_raw_events,
)
from tests.fuzz.mutants import (
    CANONICAL,
    STRIPE,
    Mutant,
    canonical_invoice,
    control_sweep,
    mutants,
    stripe_invoice_paid,
)

RUN_EVERY = 1_000
# Positive and negative cases per JSON read route (the console's API), each.
READ_EXAMPLES = 6
SETTLE_STEPS = 6
SETTLE_STEP_S = 3_600  # past every lease (30 s) and back-off (60 s at most)
UNKNOWN_SOURCES = ("netsuite", "Canonical", "canonical ", "..", "stripe", "a" * 300, "%00",
                   "billing", "revrec", "x;DROP TABLE raw_events")
AFTER_FUZZ_WAIT_S = 15  # for the served pipeline to deliver the events sent after the fuzz
SIGNING = ("signed",) * 8 + ("unsigned", "forged")  # how a Stripe mutant is sent
MUTANT_SETTINGS = settings(derandomize=True, deadline=None, database=None,
                           phases=[Phase.generate],
                           suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])


@dataclass
class Outcome:
    """What the tests judge."""

    backend: str
    tally: Tally
    pipeline_errors: Counter[str]
    probe_misses: list[str]
    elapsed_s: float = 0.0
    healthz: tuple[int, str] = (0, "")
    # route -> (reached the ledger, what the test says when it did not)
    after_fuzz: dict[str, tuple[bool, str]] = field(default_factory=dict)
    unattached: list[tuple[int, str, str | None]] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)
    internal_errors: list[str] = field(default_factory=list)  # their summaries
    largest_body: int = 0
    raw_events: int = 0
    changed_duplicates: int = 0
    phase_s: dict[str, float] = field(default_factory=dict)  # wall-clock seconds per phase
    reads: Counter[str] = field(default_factory=Counter)  # GET route -> requests answered

    def lines(self) -> list[str]:
        classes = ", ".join(f"{k} {n} ({o} seen)" for k, (n, o) in self.classes.items())
        errors = "; ".join(f"{n}x {e}" for e, n in self.pipeline_errors.most_common(4))
        return [
            f"[{self.backend}] requests sent {self.tally.sent:,} in {self.elapsed_s:.1f} s "
            f"(+{self.tally.unsendable} the HTTP client refused to send); "
            f"by class {self.tally.classes()}",
            f"[{self.backend}] by route {dict(sorted(self.tally.by_route.items()))}",
            f"[{self.backend}] refusal codes {dict(self.tally.codes.most_common())}",
            f"[{self.backend}] raw events stored {self.raw_events:,}, largest body "
            f"{self.largest_body:,} bytes; exceptions by class: {classes or 'none'}",
            f"[{self.backend}] pipeline errors: {errors or 'none'}",
            f"[{self.backend}] seconds by phase: "
            + ", ".join(f"{k} {v:.1f}" for k, v in self.phase_s.items()),
        ]


class Campaign:
    def __init__(self, served: Served, backend: str, scale: float) -> None:
        self.served = served
        self.scale = scale
        self.hub = served.finance.hub
        self.outcome = Outcome(backend, Tally(), Counter(), [])
        self._serial = 0
        self._since_run = 0

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def scaled(self, n: int) -> int:
        return max(1, round(n * self.scale))

    # -- sending ----------------------------------------------------------------------------

    def send(self, route: str, path: str, body: bytes, headers: dict[str, str] | None = None,
             label: str = "") -> tuple[int, str | None]:
        response = post(self.served.client, self.outcome.tally, route, path, body, headers,
                        label)
        self._since_run += 1
        if self._since_run >= RUN_EVERY:
            self.pipeline()
        if response is None:
            return 0, None
        return response.status_code, error_code(response)

    def canonical(self, body: bytes, label: str = "", source: str = "canonical",
                  headers: dict[str, str] | None = None) -> tuple[int, str | None]:
        return self.send(INTAKE, f"/v1/sources/{source}/events", body,
                         headers or {"content-type": "application/json"}, label)

    def webhook(self, body: bytes, label: str = "", signing: str = "signed",
                source: str = "stripe") -> tuple[int, str | None]:
        headers = {"signed": signed(body), "unsigned": {"content-type": "application/json"},
                   "forged": signed(body, "whsec_forged")}[signing]
        return self.send(WEBHOOK, f"/v1/webhooks/stripe/{source}", body, headers,
                         f"{signing} {label}")

    # -- the pipeline -----------------------------------------------------------------------

    def pipeline(self) -> None:
        self._since_run = 0
        try:
            self.hub.run_until_idle()
        except Exception as exc:  # counted and reported by the tests, never hidden
            self.outcome.pipeline_errors[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1

    def settle(self) -> None:
        """The clock past every lease and back-off, step by step, the pipeline after each."""
        for _ in range(SETTLE_STEPS):
            self.pipeline()
            self.served.clock.advance(SETTLE_STEP_S)
        self.pipeline()

    # -- phases -----------------------------------------------------------------------------

    def probe(self, probes: list[corpus.Probe],
              send: Callable[[bytes, str], tuple[int, str | None]]) -> None:
        for probe in probes:
            status, code = send(probe.body, probe.label)
            refused = 400 <= status < 500 and code is not None
            accepted = 200 <= status < 300
            missed = {corpus.REFUSED: not refused, corpus.ACCEPTED: not accepted}
            if missed.get(probe.expect, False):
                self.outcome.probe_misses.append(
                    f"{probe.label}: expected {probe.expect}, got {status} {code}")

    def corpus(self) -> None:
        self.probe(corpus.canonical_corpus(self.serial), self.canonical)
        stripe = corpus.stripe_corpus(self.serial)
        self.probe(stripe, self.webhook)
        unsigned = [corpus.Probe(p.label, p.body, corpus.REFUSED) for p in stripe]
        self.probe(unsigned, lambda body, label: self.webhook(body, label, "unsigned"))
        forged = [corpus.Probe(p.label, p.body, corpus.REFUSED) for p in stripe[:20]]
        self.probe(forged, lambda body, label: self.webhook(body, label, "forged"))

    def unknown_sources(self) -> None:
        body = json.dumps(canonical_invoice(self.serial())).encode()
        for i in range(self.scaled(40)):
            source = UNKNOWN_SOURCES[i % len(UNKNOWN_SOURCES)]
            self.canonical(body, "unknown source", source=source)
            self.webhook(body, "unknown Stripe source", source=source + "x")

    def sweep(self) -> None:
        for label, body in control_sweep(CANONICAL, self.serial):
            self.canonical(body, label)
        for label, body in control_sweep(STRIPE, self.serial):
            self.webhook(body, label)

    def schemathesis(self) -> None:
        """Mostly at known sources, so bodies reach a mapper; some with any source name."""
        app = self.served.app
        for fixed, n in (({"source": "canonical"}, 100), (None, 25)):
            for label, target, body, headers in openapi.generated(app, INTAKE,
                                                                  self.scaled(n), fixed):
                self.send(INTAKE, target, body, headers, label)
        generated = openapi.generated(app, WEBHOOK, self.scaled(100), {"source": "stripe"})
        for i, (label, target, body, headers) in enumerate(generated):
            if i % 2 == 0:  # half of them signed, so they reach the Stripe mapper
                headers = {**headers, **signed(body, SECRET)}
            self.send(WEBHOOK, target, body, headers, label)

    def reads(self) -> None:
        """Every JSON read of the API (the console's), on what the campaign has stored:
        positive and negative cases of each GET route from the app's OpenAPI document."""
        app = self.served.app
        for path in openapi.reads(app):
            for label, target, _body, headers in openapi.generated(
                    app, path, self.scaled(READ_EXAMPLES), method="GET"):
                response = get(self.served.client, self.outcome.tally, path, target, headers,
                               label)
                if response is not None:
                    self.outcome.reads[path] += 1

    def mutants(self) -> None:
        """Each drawn mutant breaks every base payload of its route the same way."""
        @settings(MUTANT_SETTINGS, max_examples=self.scaled(2_300))
        @given(mutants())
        def canonical(mutant: Mutant) -> None:
            for kind, body in mutant.bodies(CANONICAL, self.serial):
                self.canonical(body, f"mutant {kind} {mutant.describe()}")

        @settings(MUTANT_SETTINGS, max_examples=self.scaled(800))
        @given(mutants())
        def stripe(mutant: Mutant) -> None:
            signing = SIGNING[mutant.op_arg % len(SIGNING)]
            for kind, body in mutant.bodies(STRIPE, self.serial):
                self.webhook(body, f"mutant {kind} {mutant.describe()}", signing)

        canonical()
        stripe()

    def duplicates(self) -> None:
        """The same event id with a changed amount (finding 4), and byte-identical resends
        (only counted)."""
        for _ in range(self.scaled(100)):
            n = self.serial()
            self.canonical(json.dumps(canonical_invoice(n, "60000.00")).encode(), "original")
            self.canonical(json.dumps(canonical_invoice(n, "59999.00")).encode(), "changed")
            self.outcome.changed_duplicates += 1
        for _ in range(self.scaled(25)):
            n = self.serial()
            self.webhook(json.dumps(stripe_invoice_paid(n, 6_000_000)).encode(), "original")
            self.webhook(json.dumps(stripe_invoice_paid(n, 5_999_900)).encode(), "changed")
            self.outcome.changed_duplicates += 1
        for _ in range(self.scaled(50)):
            body = json.dumps(canonical_invoice(self.serial())).encode()
            self.canonical(body, "resent")
            self.canonical(body, "resent")

    def run(self) -> Outcome:
        started = time.monotonic()
        for phase in (self.corpus, self.unknown_sources, self.sweep, self.schemathesis,
                      self.mutants, self.duplicates, self.settle, self.reads,
                      self.after_fuzz, self.read_back):
            begun = time.monotonic()
            phase()
            self.outcome.phase_s[phase.__name__] = time.monotonic() - begun
        self.outcome.elapsed_s = time.monotonic() - started
        return self.outcome

    # -- afterwards -------------------------------------------------------------------------

    def after_fuzz(self) -> None:
        """One valid event per route, sent to the same hub served with its supervised
        pipeline (`finsync serve`): each must reach the ledger. Then that app's /healthz."""
        n = self.serial()
        invoice = json.dumps(canonical_invoice(n, "250.00")).encode()
        charge = json.dumps(stripe_invoice_paid(n)).encode()
        tally = self.outcome.tally
        with self.served.with_pipeline() as client:
            post(client, tally, INTAKE, "/v1/sources/canonical/events", invoice,
                 {"content-type": "application/json"}, "after the fuzz")
            post(client, tally, WEBHOOK, "/v1/webhooks/stripe/stripe", charge, signed(charge),
                 "after the fuzz")
            deadline = time.monotonic() + AFTER_FUZZ_WAIT_S
            reached = self._reached_ledger(client, n)
            while not all(ok for ok, _ in reached.values()) and time.monotonic() < deadline:
                time.sleep(0.05)
                reached = self._reached_ledger(client, n)
            health = client.get("/healthz")
        self.outcome.after_fuzz = reached
        self.outcome.healthz = (health.status_code, health.text[:300])

    def _reached_ledger(self, client: TestClient, n: int) -> dict[str, tuple[bool, str]]:
        timeline = client.get(f"/v1/correlations/fz-{n}/milestones")
        names = [f"HTTP {timeline.status_code}"]
        if timeline.status_code == 200:
            names = [m["name"] for m in timeline.json()["milestones"]]
        with self.hub.engine.connect() as conn:
            rows = conn.execute(select(deliveries.c.target, deliveries.c.status)
                                .join(events, events.c.event_id == deliveries.c.event_id)
                                .where(events.c.source_event_id == f"evt_fz{n}")).all()
        stripe = [f"{target}:{status}" for target, status in rows]
        return {"canonical": ("invoice_posted" in names, f"milestones {names}"),
                "stripe": (f"ledger:{DeliveryStatus.DONE}" in stripe, f"deliveries {stripe}")}

    def read_back(self) -> None:
        engine = self.hub.engine
        out = self.outcome
        out.unattached = unattached_raw_events(engine)
        out.stuck = stuck_deliveries(engine, self.served.clock())
        out.classes = exception_classes(engine)
        out.internal_errors = summaries(engine, ExceptionClass.INTERNAL_ERROR)
        out.largest_body = largest_stored_body(engine)
        out.raw_events = raw_event_count(engine)
