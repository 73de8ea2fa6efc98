"""An exception's payload view: redacted for a reader without pii:read, whole with it."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.auth.principal import FINANCE_READ, PII_READ
from finsync.cli.main import app as cli_app
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub

EMAIL = "view.planted@example.org"


def test_a_refused_payload_is_shown_redacted_and_whole_only_with_pii_read(
        engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    app = create_app(hub)
    client = authkit.client(app, engine, [s for s in authkit.EVERY_SCOPE if s != PII_READ])
    document = payment_doc("pay_v", "10.00", "inv_v")
    document["amount"] = EMAIL  # a value in the wrong field: a mapping error quotes it
    document["billing_details"] = {"name": "Vera Planted", "address": {"city": "Oslo"}}
    body = envelope("payment.applied", "gw-v", ("payment", "pay_v", None),
                    {"payment": document}, correlation_id="c-v")
    assert client.post("/v1/sources/canonical/events", content=json.dumps(body)).status_code \
        == 422
    [row] = hub.exceptions("all")
    assert EMAIL not in row["summary"]

    shown = client.get(f"/v1/exceptions/{row['id']}").json()
    payment = shown["payload"]["payload"]["payment"]
    assert payment["billing_details"] == "[redacted: payment_method]"
    assert payment["amount"] == "[redacted: email]"
    assert payment["customer_id"] == "cus_1"
    assert EMAIL not in json.dumps(shown)

    whole = authkit.client(app, engine).get(f"/v1/exceptions/{row['id']}").json()
    assert whole["payload"]["payload"]["payment"]["amount"] == EMAIL
    assert whole["payload"]["payload"]["payment"]["billing_details"]["name"] == "Vera Planted"


def test_a_refused_lone_surrogate_is_shown_as_a_replacement_character(
        engine: Engine, tmp_path: Path) -> None:
    """The fuzz campaign's read phase found it: a stored body escaping a lone surrogate
    (refused `unpaired_surrogate`) parsed into a string no UTF-8 answer can carry, and the
    exception's view answered 500."""
    hub = make_hub(engine, tmp_path)
    app = create_app(hub)
    body = json.dumps(envelope("payment.applied", "gw-s", ("payment", "pay_s", None),
                               {"payment": payment_doc("pay_s", "10.00", "inv_s")},
                               correlation_id="c-s")).replace('"cus_1"', '"cus_\\ud800"')
    client = authkit.client(app, engine)
    refused = client.post("/v1/sources/canonical/events", content=body)
    assert refused.json()["error"]["code"] == "unpaired_surrogate"
    [row] = hub.exceptions("all")
    for reader in (client, authkit.client(app, engine, [FINANCE_READ])):
        shown = reader.get(f"/v1/exceptions/{row['id']}")
        assert shown.status_code == 200, shown.text
    payment = client.get(f"/v1/exceptions/{row['id']}").json()["payload"]["payload"]["payment"]
    assert payment["customer_id"] == "cus_\ufffd"


def test_an_unknown_exception_is_a_coded_404(engine: Engine, tmp_path: Path) -> None:
    client = authkit.client(create_app(make_hub(engine, tmp_path)), engine)
    response = client.get("/v1/exceptions/999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_exception"


def test_ids_out_of_range_are_coded_422_never_a_driver_error(engine: Engine,
                                                             tmp_path: Path) -> None:
    client = authkit.client(create_app(make_hub(engine, tmp_path)), engine)
    for url in ("/v1/exceptions/99999999999999999999999", "/v1/exceptions/0",
                f"/v1/correlations/{'x' * 256}/calls",
                f"/v1/correlations/{'x' * 256}/milestones",
                # a NUL, which PostgreSQL's text cannot hold (was a 500 there)
                "/v1/correlations/a%00b/milestones", "/v1/correlations/a%1fb/calls"):
        response = client.get(url)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    shown = CliRunner().invoke(cli_app, ["exceptions", "show", "99999999999999999999999"])
    assert shown.exit_code == 2 and "less than or equal" in shown.output
