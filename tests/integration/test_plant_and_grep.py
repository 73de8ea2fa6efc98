"""Plant known secrets and personal data, run the workflow, then grep everything it left.

The workflow, on SQLite and PostgreSQL: canonical intake with credentials in every header a
careless client sends (`Authorization`, `Cookie`, `X-Api-Key`, `X-Auth-Token`), a mapping
error that quotes a personal value, Stripe webhooks signed with the planted webhook secret
(a customer with a name, e-mail, phone, address, tax id and a note; the same event again
with another name, so a duplicate_event diffs personal fields; a forged one), the pipeline,
the API's exception listing and views, the CLI (`exceptions list`, `exceptions show`, `status`, a
configuration that holds a secret in clear) and the ledger export.

Then: no planted secret anywhere (every column of every table, the captured log, every CLI
output and API answer, the exported file); no planted personal value anywhere but in the
payloads of record (`RECORD_COLUMNS`: the raw bodies as received, the canonical events'
payloads), which only a `pii:read` reader sees unredacted. A reader with `pii:read` does see
the customer's name in `exceptions show`, so the grep would notice if redaction stopped
telling readers apart.
"""

from __future__ import annotations

import getpass
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.auth.principal import PII_READ
from finsync.bootstrap import build_finance, build_webhooks
from finsync.cli.main import app as cli_app
from finsync.config import load_config
from finsync.connectors.stripe.signature import header_for
from finsync.hub import logfilter
from tests import authkit
from tests.builders import envelope, invoice_doc, payment_doc

SECRETS = {
    "api token": "fsk_PLANTEDapiToken7Hq2xZ9Lw3",
    "x-api-key": "PLANTED-xapikey-5c1e8a",
    "cookie": "PLANTED-cookie-9d4f2b",
    "x-auth-token": "PLANTED-xauth-3a7c6e",
    "stripe api key": "sk_live_PLANTEDstripeKey4k9",
    "webhook secret": "whsec_PLANTEDwebhookSecret2m8",
    "database password": "PLANTED-dbpass-8b3d",
}
PII = {
    "name": "Zelda Plantedperson",
    "second name": "Zora Plantedother",
    "email": "zelda.planted@example.org",
    "phone": "+44 20 7946 0999",
    "address": "42 Plantation Road",
    "tax id": "DE987654321",
    "note": "PLANTED note: prefers calls after six",
}
# Where personal data is kept on purpose: the payloads of record (redacted in every view
# for a reader without pii:read).
RECORD_COLUMNS = {("raw_events", "body"), ("events", "payload")}
CREDENTIAL_HEADERS = {
    "Authorization": f"Bearer {SECRETS['api token']}",
    "Cookie": f"session={SECRETS['cookie']}",
    "X-Api-Key": SECRETS["x-api-key"],
    "X-Auth-Token": SECRETS["x-auth-token"],
    "Content-Type": "application/json",
    "Idempotency-Key": "idem-plant-1",
}

CONFIG = """
[hub]
database_url = "{db_url}"
[ownership]
customer = "stripe"
catalog = "canonical"
subscription = "canonical"
payments = "canonical"
usage = "canonical"
tax = "tax"
ledger = "ledger"
revenue = "revrec"
[sources]
canonical = "canonical"
stripe = "stripe"
[stripe.stripe]
legal_entity = "le_us"
api_key_env = "PLANT_STRIPE_KEY"
poll_on_run = false
[[stripe.stripe.webhook_secrets]]
env = "PLANT_WHSEC"
[systems.ledger]
role = "ledger"
connector = "embedded"
[systems.revrec]
role = "revenue"
connector = "embedded"
[systems.billing]
role = "billing"
connector = "embedded"
[routes]
"payment.applied" = ["ledger"]
"invoice.issued" = ["ledger"]
[[ledger.entities]]
id = "le_us"
name = "Acme US"
functional_currency = "USD"
fiscal_years = [2026, 2027]
{auth}
"""
# Who runs the CLI here: an operator who may read finance but not personal data.
OPERATOR = f"""
[auth.principals.operator]
scopes = ["finance:read", "exceptions:act", "periods:manage"]
[auth.os_users]
"{getpass.getuser()}" = "operator"
"""
PII_READER = f"""
[auth.principals.auditor]
scopes = ["pii:read", "finance:read"]
[auth.os_users]
"{getpass.getuser()}" = "auditor"
"""


def _customer_event(evt: str, name: str) -> dict[str, Any]:
    return {
        "id": evt, "object": "event", "api_version": "2025-03-31.basil",
        "created": int(time.time()) - 60, "type": "customer.created", "livemode": False,
        "data": {"object": {
            "id": "cus_plant", "object": "customer", "name": name, "email": PII["email"],
            "phone": PII["phone"], "currency": "usd",
            "address": {"line1": PII["address"], "city": "London", "country": "GB"},
            "tax_ids": {"data": [{"type": "eu_vat", "value": PII["tax id"]}]},
            "metadata": {"note": PII["note"]}}}}


def _customer(evt: str, name: str) -> bytes:
    return json.dumps(_customer_event(evt, name)).encode()


def _delivery(evt: str, name: str) -> bytes:
    """The poller's sequenced copy of a customer event (a webhook copy maps to nothing)."""
    event = _customer_event(evt, name)
    return json.dumps({"object": "finsync.stripe_delivery", "event": event,
                       "current": event["data"]["object"], "version": 1}).encode()


def _signed(body: bytes, secret: str) -> dict[str, str]:
    return {**CREDENTIAL_HEADERS,
            "Stripe-Signature": header_for(secret, int(time.time()), body)}


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    logfilter.install()
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("finsync")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield text
    logger.removeHandler(handler)
    logger.setLevel(level)


def _write_config(path: Path, db_url: str, auth: str = OPERATOR) -> Path:
    path.write_text(CONFIG.format(db_url=db_url, auth=auth))
    return path


def _intake(client: TestClient) -> list[str]:
    """Every request of the workflow; returns what the API answered."""
    answers = []
    invoice = invoice_doc("inv_plant", "10.00")
    invoice["lines"][0]["description"] = PII["note"]
    issued = envelope("invoice.issued", "gw-plant-0", ("invoice", "inv_plant", None),
                      {"invoice": invoice}, correlation_id="c-plant", source="canonical")
    payment = envelope("payment.applied", "gw-plant-1", ("payment", "pay_plant", None),
                       {"payment": payment_doc("pay_plant", "10.00", "inv_plant")},
                       correlation_id="c-plant", source="canonical")
    bad = envelope("payment.applied", "gw-plant-2", ("payment", "pay_bad", None),
                   {"payment": payment_doc("pay_bad", PII["email"], "inv_plant")},
                   correlation_id="c-plant", source="canonical")
    for body, expected in ((issued, 202), (payment, 202), (bad, 422)):
        response = client.post("/v1/sources/canonical/events", content=json.dumps(body),
                               headers=CREDENTIAL_HEADERS)
        assert response.status_code == expected, response.text
        answers.append(response.text)
    secret = SECRETS["webhook secret"]
    for body, sign_with, expected in (
            (_customer("evt_plant_1", PII["name"]), secret, 200),
            (_delivery("evt_plant_1", PII["name"]), secret, 200),
            (_delivery("evt_plant_1", PII["second name"]), secret, 200),  # duplicate_event
            (_customer("evt_plant_2", PII["name"]), "whsec_forged_000000", 400)):
        response = client.post("/v1/webhooks/stripe/stripe", content=body,
                               headers=_signed(body, sign_with))
        assert response.status_code == expected, response.text
        answers.append(response.text)
    answers.append(client.get("/v1/exceptions", params={"status": "all"},
                              headers=CREDENTIAL_HEADERS).text)
    return answers


def _cli(args: list[str], config: Path, code: int = 0) -> str:
    """What the command printed; it must exit with `code` (1: refused)."""
    result = CliRunner().invoke(cli_app, [*args, "--config", str(config)])
    assert result.exit_code == code, result.output
    return f"$ finsync {' '.join(args)}\n{result.output}"


def _cli_outputs(config: Path, tmp_path: Path, exception_ids: list[int]) -> list[str]:
    outputs = [_cli(["exceptions", "list", "--status", "all", "--json"], config),
               _cli(["exceptions", "list", "--status", "all"], config),
               _cli(["status", "--json"], config)]
    for exception_id in exception_ids:
        outputs.append(_cli(["exceptions", "show", str(exception_id), "--json"], config))
        outputs.append(_cli(["exceptions", "show", str(exception_id)], config))
    in_clear = (('api_key_env = "PLANT_STRIPE_KEY"', f'api_key = "{SECRETS["stripe api key"]}"'),
                ('database_url = "', f'database_url = "postgresql://finsync:'
                                     f'{SECRETS["database password"]}@db/hub" #'))
    for index, (setting, clear) in enumerate(in_clear):
        path = tmp_path / f"clear{index}.toml"
        path.write_text(config.read_text().replace(setting, clear))
        refused = _cli(["status", "--json"], path, code=1)
        assert "config_error" in refused, refused
        outputs.append(refused)
    return outputs


def _every_value(engine: Engine) -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null value in the database."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", "replace")
                    yield table.name, column, str(value)


def _found(text: str, planted: dict[str, str]) -> list[str]:
    return [what for what, value in planted.items() if value in text]


def test_no_planted_secret_or_personal_value_leaks(
        db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        captured_log: io.StringIO) -> None:
    monkeypatch.setenv("PLANT_STRIPE_KEY", SECRETS["stripe api key"])
    monkeypatch.setenv("PLANT_WHSEC", SECRETS["webhook secret"])
    config_path = _write_config(tmp_path / "finsync.toml", db_url)
    config = load_config(config_path)
    finance = build_finance(config, engine=engine)
    # The planted API token is a real one, sent with every request: only its hash may stay.
    token = authkit.issue(engine, [s for s in authkit.EVERY_SCOPE if s != PII_READ])
    monkeypatch.setitem(SECRETS, "api token", token)
    monkeypatch.setitem(CREDENTIAL_HEADERS, "Authorization", f"Bearer {token}")
    client = TestClient(create_app(finance.hub,
                                   webhooks=build_webhooks(config, finance.hub.engine),
                                   limits_for=config.limits_for),
                        headers={"Authorization": f"Bearer {token}"})
    answers = _intake(client)
    finance.hub.run_until_idle()
    rows = finance.hub.exceptions("all")
    classes = {row["class"] for row in rows}
    assert {"mapping_error", "duplicate_event", "ownership_violation"} <= classes, rows
    views = [client.get(f"/v1/exceptions/{row['id']}").text for row in rows]
    assert all('"payload"' in view for view in views)
    outputs = _cli_outputs(config_path, tmp_path, [int(row["id"]) for row in rows])
    export = tmp_path / "books.beancount"
    outputs.append(_cli(["ledger", "export", str(export)], config_path))
    assert export.read_text().count("entry:") >= 1

    leaks: list[str] = []
    for table, column, value in _every_value(engine):
        leaks += [f"secret {w} in {table}.{column}" for w in _found(value, SECRETS)]
        if (table, column) not in RECORD_COLUMNS:
            leaks += [f"{w} in {table}.{column}" for w in _found(value, PII)]
    for name, text in (("log", captured_log.getvalue()), ("export", export.read_text()),
                       *(("cli output", o) for o in outputs)):
        leaks += [f"{w} in the {name} {text.splitlines()[0]}"
                  for w in _found(text, SECRETS | PII)]
    for answer in answers:  # a sender is told about its own request: never a secret
        leaks += [f"secret {w} in an API answer" for w in _found(answer, SECRETS)]
    for view in (answers[-1], *views):  # the API's exception listing and each exception
        leaks += [f"{w} in an API view" for w in _found(view, PII)]
    assert leaks == []
    # The grep can see: the payloads of record hold what was planted, and a pii:read
    # reader sees the name the others do not.
    record = " ".join(v for t, c, v in _every_value(engine) if (t, c) in RECORD_COLUMNS)
    assert set(_found(record, PII)) == set(PII)
    duplicate = next(r for r in rows if r["class"] == "duplicate_event")
    assert "customer.name: [redacted: name] -> [redacted: name]" in duplicate["detail"]
    reader = _write_config(tmp_path / "reader.toml", db_url, PII_READER)
    shown = json.loads(_cli(["exceptions", "show", str(duplicate["id"]), "--json"],
                            reader).split("\n", 1)[1])
    assert PII["name"] in json.dumps(shown["payload"])
    finance.dispose()
