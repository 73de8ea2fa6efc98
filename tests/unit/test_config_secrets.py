"""Secrets in the configuration: from the environment or a secret file, never in clear."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import build_stripe_client, build_webhooks, webhook_secrets
from finsync.config import ConfigError, parse_config
from finsync.domain.events import BusinessDomain
from finsync.domain.secret import valid_at
from finsync.storage.db import make_engine

PLANTED_KEY = "sk_live_PLANTEDstripeKey0000"
PLANTED_WHSEC = "whsec_PLANTEDwebhookSecret00"


def data(**stripe: Any) -> dict[str, Any]:
    return {
        "ownership": {d.value: "stripe" for d in BusinessDomain},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", **stripe}},
    }


@pytest.mark.parametrize(("where", "data_"), [
    ("stripe.stripe.api_key", data(api_key=PLANTED_KEY)),
    ("stripe.stripe.webhook_secret", data(webhook_secret=PLANTED_WHSEC)),
    ("stripe.stripe.webhook_secrets[0]", data(webhook_secrets=[PLANTED_WHSEC])),
    ("systems.erp.password", {"ownership": {}, "systems": {"erp": {
        "role": "ledger", "connector": "tryton", "password": "hunter2-PLANTED"}}}),
    ("audit.signing_key", {"ownership": {}, "audit": {"signing_key": "PLANTED-key"}}),
    ("stripe.stripe.base_url", data(base_url=f"https://x/{PLANTED_KEY}")),
])
def test_a_secret_in_clear_is_refused_by_its_setting_never_its_value(
        where: str, data_: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(data_, Path("."))
    assert where in str(refused.value)
    assert "in clear" in str(refused.value)
    assert "PLANTED" not in str(refused.value)


def test_a_database_password_belongs_in_the_environment() -> None:
    with pytest.raises(ConfigError, match="FINSYNC_DATABASE_URL") as refused:
        parse_config({"hub": {"database_url": "postgresql://u:PLANTEDpw@db/hub"},
                      "ownership": {d.value: "x" for d in BusinessDomain}}, Path("."))
    assert "PLANTED" not in str(refused.value)


def test_names_of_where_secrets_are_are_accepted() -> None:
    config = parse_config(data(api_key_env="T_KEY", api_key_file="secrets/key",
                               webhook_secrets=[{"env": "T_WHSEC"}]), Path("."))
    assert config.stripe["stripe"].api_key_file == "secrets/key"


def test_a_secret_file_wins_over_the_environment_and_loses_its_line_break(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stripe_key").write_text(PLANTED_KEY + "\n")
    monkeypatch.setenv("T_KEY", "sk_test_from_the_environment")
    config = parse_config(data(api_key_env="T_KEY", api_key_file="stripe_key"), tmp_path)
    assert config.secret("x", "T_KEY", "stripe_key").reveal() == PLANTED_KEY
    client = build_stripe_client(config, "stripe")
    assert PLANTED_KEY not in repr(client.__dict__)


def test_a_missing_or_empty_secret_names_where_it_was_looked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_KEY", raising=False)
    config = parse_config(data(api_key_env="T_KEY"), tmp_path)
    with pytest.raises(ConfigError, match="T_KEY is not set"):
        build_stripe_client(config, "stripe")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        config.secret("x", None, "empty")
    with pytest.raises(ConfigError, match="cannot be read"):
        config.secret("x", None, "absent")


def test_a_webhook_secret_names_one_place_and_a_zoned_not_after() -> None:
    naive = datetime.fromisoformat("2027-01-01T00:00")
    for wrong in ({}, {"env": "A", "file": "b"}, {"env": "A", "not_after": naive}):
        with pytest.raises(ConfigError, match="webhook_secrets"):
            parse_config(data(webhook_secrets=[wrong]), Path("."))


def test_webhook_secrets_rotate_with_an_overlap(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cutover = datetime(2026, 12, 7, tzinfo=UTC)
    (tmp_path / "old").write_text("whsec_old_00000000")
    monkeypatch.setenv("T_WHSEC_NEW", "whsec_new_00000000")
    config = parse_config(data(webhook_secrets=[
        {"env": "T_WHSEC_NEW"}, {"file": "old", "not_after": cutover}]), tmp_path)
    secrets = webhook_secrets(config, "stripe")
    assert valid_at(secrets, datetime(2026, 12, 6, tzinfo=UTC)) == ["whsec_new_00000000",
                                                                    "whsec_old_00000000"]
    assert valid_at(secrets, cutover) == ["whsec_new_00000000"]
    engine = make_engine("sqlite://")
    assert set(build_webhooks(config, engine)) == {"stripe"}
    engine.dispose()


def test_tryton_bootstrap_reads_its_password_from_a_file_or_says_which(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from finsync.cli.main import app

    result = CliRunner().invoke(app, [
        "tryton", "bootstrap", "--url", "http://127.0.0.1:9", "--database", "books",
        "--password-file", str(tmp_path / "absent"), "--json"])
    assert result.exit_code != 0
    assert json.loads(result.output)["error"]["code"] == "config_error"
    assert "absent" in result.output
