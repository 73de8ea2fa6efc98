"""A real localstripe process for the integration tests, and a plain-HTTP client for it.

The emulator runs from its own virtualenv, built on first use from the pinned, hashed
`tests/external/localstripe-requirements.txt` under `.cache/localstripe-<hash>/` (so a
clean clone builds it once), bound to 127.0.0.1 on a free port with a private TMPDIR.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from finsync.config import FinsyncConfig, parse_config
from finsync.connectors.ports import SourceEvent, SourcePage
from finsync.domain.events import BusinessDomain, EventType

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "tests" / "external" / "localstripe-requirements.txt"
LAUNCHER = ROOT / "tests" / "external" / "localstripe_launcher.py"
API_KEY = "sk_test_finsync"


class LocalstripeUnavailableError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def localstripe_python() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    venv = ROOT / ".cache" / f"localstripe-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"localstripe-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the suite's workers (pytest-xdist) build it once
        if (venv / ".complete").exists():
            return python
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                           capture_output=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "--require-hashes", "-r",
                            str(REQUIREMENTS)], check=True, capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise LocalstripeUnavailableError(f"cannot build localstripe's virtualenv: {exc}") \
                from exc
        (venv / ".complete").write_text(digest)
    return python


# localstripe sends an event's webhooks one second after the event, to the registrations it
# holds *then*; a reset waits this long after the last write before it registers anew.
WEBHOOK_DELAY_S = 2.0


@dataclass
class Localstripe:
    base_url: str
    last_write: float = field(default=0.0, compare=False)  # time.monotonic() of it

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method,
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        if method != "GET":
            self.last_write = time.monotonic()
        return json.loads(text) if text.strip() else None

    def reset(self, webhook_url: str | None, secret: str = "whsec_unused") -> None:
        """No objects, no events, and webhooks only to `webhook_url` (or to nowhere).

        Webhooks of an earlier test's last events are still on their way for a second: they
        go nowhere before `webhook_url` is registered (else the next test receives another
        test's events, signed with its own secret)."""
        nowhere = "http://127.0.0.1:9/nowhere"
        written = self.last_write
        self.call("POST", "/_config/webhooks/finsync", {"url": nowhere, "secret": secret})
        time.sleep(max(0.0, written + WEBHOOK_DELAY_S - time.monotonic()))
        self.call("DELETE", "/_config/data")
        # Registrations survive a reset: point the one the tests use where they want it.
        self.call("POST", "/_config/webhooks/finsync",
                  {"url": webhook_url or nowhere, "secret": secret})

    def subscribe(self, seats: int, unit_amount: int, *, plan: str = "plan_seat") -> dict[str, Any]:
        """A customer with a card on a monthly per-seat plan: localstripe invoices and charges
        it at once (invoice.created, payment_intent.succeeded, invoice.payment_succeeded)."""
        customer = self.call("POST", "/v1/customers", {
            "name": "Acme Analytics", "email": "ap@acme.example",
            "payment_method": "pm_card_visa",
            "invoice_settings[default_payment_method]": "pm_card_visa"})
        self.call("POST", "/v1/products", {"id": f"prod_{plan}", "name": "Seats"})
        self.call("POST", "/v1/plans", {"id": plan, "product": f"prod_{plan}",
                                        "amount": unit_amount, "currency": "usd",
                                        "interval": "month"})
        subscription: dict[str, Any] = self.call("POST", "/v1/subscriptions", {
            "customer": customer["id"], "items[0][plan]": plan, "items[0][quantity]": seats})
        return subscription

    def events(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/events?limit=100")["data"])


def start_localstripe(tmp_dir: Path) -> Iterator[Localstripe]:
    python = localstripe_python()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    log = (tmp_dir / "localstripe.log").open("wb")  # a file: a full pipe would block it
    process = subprocess.Popen([str(python), str(LAUNCHER), str(port)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    server = Localstripe(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.call("GET", "/v1/customers")
                break
            except (urllib.error.URLError, ConnectionError) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LocalstripeUnavailableError(
                        f"localstripe did not start: {exc}; see {log.name}") from exc
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# -- finsync's side: a hub with a Stripe source, its API served on a free port ----------------

def stripe_config(db_url: str, base_url: str, *, poll_on_run: bool = False,
                  secret_envs: tuple[str, ...] = ("FINSYNC_TEST_WHSEC",
                                                  "FINSYNC_TEST_WHSEC_OLD")) -> FinsyncConfig:
    year = datetime.now(UTC).year
    return parse_config({
        "hub": {"database_url": db_url},
        "ownership": {d.value: "stripe" for d in BusinessDomain} | {
            "ledger": "ledger", "revenue": "revrec", "tax": "tax"},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", "base_url": base_url,
                              "api_key_env": "FINSYNC_TEST_STRIPE_KEY",
                              "webhook_secrets": [{"env": e} for e in secret_envs],
                              "poll_on_run": poll_on_run}},
        "systems": {"ledger": {"role": "ledger", "connector": "embedded"}},
        "routes": {t.value: ["ledger"] for t in (EventType.INVOICE_ISSUED,
                                                 EventType.CREDIT_MEMO_ISSUED,
                                                 EventType.PAYMENT_APPLIED,
                                                 EventType.REFUND_ISSUED)},
        "ledger": {"entities": [{"id": "le_us", "name": "Acme US", "functional_currency": "USD",
                                 "fiscal_years": [year - 1, year, year + 1]}]},
    }, ROOT)


class ApiServer:
    """finsync's FastAPI app under uvicorn in a thread, on 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("finsync API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def wait_for(condition: Callable[[], bool], timeout_s: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class TruncatingSource:
    """localstripe's real events, with invoice lines cut to a partial page (as Stripe does
    past ten lines), so that the poller has to fetch the invoice from localstripe."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fetched: list[tuple[str, str]] = []

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, Any]:
        self.fetched.append((object_type, external_id))
        return self.inner.fetch(object_type, external_id)  # type: ignore[no-any-return]

    def events_after(self, cursor: str | None, limit: int) -> SourcePage:
        page = self.inner.events_after(cursor, limit)
        return SourcePage(tuple(self._cut(e) for e in page.events), page.cursor, page.has_more)

    @staticmethod
    def _cut(item: SourceEvent) -> SourceEvent:
        obj = item.body["data"]["object"]
        if obj.get("object") != "invoice":
            return item
        partial = dict(obj, lines={"object": "list", "data": [], "has_more": True})
        return SourceEvent(item.source_event_id, item.type, item.created,
                           dict(item.body, data={"object": partial}))
