from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from finsync.bootstrap import build_revenue_service
from finsync.config import DEFAULT_CONFIG, ConfigError, parse_config
from finsync.streaming.settings import TransportSettings


def _default() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_CONFIG.read_text())


def test_default_configuration_is_valid(tmp_path: Path) -> None:
    config = parse_config(_default(), tmp_path)
    assert config.hub_settings().routes["invoice.issued"] == ("ledger", "revrec", "tax")
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'var/finsync.db'}"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["ownership"].pop("payments"), "must name an owner for: payments"),
    (lambda c: c["routes"].update({"invoice.exploded": ["ledger"]}), "unknown event type"),
    (lambda c: c["routes"].update({"refund.issued": ["netsuite"]}), "not under \\[systems\\]"),
    (lambda c: c["ownership"].update({"treasury": "bank"}), "ownership.treasury"),
    (lambda c: c["delivery"].update({"attempts_max": 0}), "delivery.attempts_max"),
    (lambda c: c["systems"]["ledger"].update({"posting": "weekly"}), "posting"),
    (lambda c: c["systems"]["ledger"].update({"batch_size": 0}), "batch_size"),
    (lambda c: c["systems"]["ledger"].update({"connector": "filedrop",
                                              "posting": "daily_summary"}),
     "previews its journals"),
])
def test_invalid_configuration_is_refused_with_a_reason(tmp_path: Path, edit: Any,
                                                        message: str) -> None:
    data = _default()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)


def test_database_url_from_environment_wins(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", "postgresql://u@h/db")
    assert parse_config(_default(), tmp_path).database_url == "postgresql://u@h/db"


def test_ledger_posting_settings_are_read(tmp_path: Path) -> None:
    data = _default()
    data["systems"]["ledger"].update({"batch_size": 25, "posting": "daily_summary",
                                      "calls_per_minute": 120, "concurrency": 4})
    ledger = parse_config(data, tmp_path).systems["ledger"]
    assert (ledger.batch_size, ledger.posting, ledger.calls_per_minute, ledger.concurrency) == \
        (25, "daily_summary", 120, 4)


def test_revenue_accounts_per_entity_are_read_and_an_unknown_role_is_refused(
        tmp_path: Path) -> None:
    data = _default()
    data["revenue"]["entity_accounts"] = {"le_eu": {"revenue": "4010"}}
    engine = create_engine(f"sqlite:///{tmp_path / 'revrec.db'}")
    service = build_revenue_service(parse_config(data, tmp_path), engine)
    assert service.accounts_of("le_eu").revenue == "4010"
    assert service.accounts_of("le_us").revenue == "4000"
    assert service.accounts_of("le_eu").contra_revenue == "4910"
    data["revenue"]["entity_accounts"] = {"le_eu": {"revenu": "4010"}}
    with pytest.raises(ConfigError, match="revenu"):
        build_revenue_service(parse_config(data, tmp_path), engine)
    engine.dispose()


def test_the_default_transport_is_in_process() -> None:
    settings = parse_config(_default(), Path(".")).transport.to_settings()
    assert settings == TransportSettings()
    assert settings.kind == "inprocess"


def test_a_nats_transport_is_read_into_settings(tmp_path: Path) -> None:
    data = _default()
    data["transport"] = {"kind": "nats", "servers": ["nats://n1:4222", "tls://[::1]:4223"],
                         "namespace": "acme", "partitions": 64, "replicas": 5,
                         "duplicate_window_s": 600, "ack_wait_s": 20, "lease_ttl_s": 5}
    settings = parse_config(data, tmp_path).transport.to_settings()
    assert settings == TransportSettings(
        kind="nats", servers=("nats://n1:4222", "tls://[::1]:4223"), namespace="acme",
        partitions=64, replicas=5, duplicate_window_s=600.0, ack_wait_s=20.0, lease_ttl_s=5.0)
    assert settings.stream("events") == "ACME_EVENTS"


@pytest.mark.parametrize(("transport", "message"), [
    ({"kind": "kafka"}, "transport.kind"),
    ({"partitions": 0}, "transport.partitions"),
    ({"partitions": 4097}, "transport.partitions"),
    ({"replicas": 0}, "transport.replicas"),
    ({"replicas": 6}, "transport.replicas"),
    ({"servers": []}, "transport.servers"),
    ({"servers": ["http://127.0.0.1:4222"]}, "nats:// or tls://"),
    ({"servers": ["nats://127.0.0.1:4222/path"]}, "nats:// or tls://"),
    ({"servers": ["nats://"]}, "nats:// or tls://"),
    ({"servers": ["nats://alice@127.0.0.1:4222"]}, "nats:// or tls://"),
    ({"servers": ["nats://a:b@127.0.0.1:4222"]}, "transport.servers.0. holds a secret"),
    ({"namespace": "Finsync"}, "transport.namespace"),
    ({"namespace": "a.b"}, "transport.namespace"),
    ({"duplicate_window_s": 7200, "retention_s": 3600}, "cannot exceed retention_s"),
    ({"max_deliver": 0}, "max_deliver"),
    ({"ack_wait_s": 0}, "transport.ack_wait_s"),
    ({"partitons": 4}, "transport.partitons"),
])
def test_a_transport_that_cannot_work_is_refused(tmp_path: Path, transport: dict[str, Any],
                                                 message: str) -> None:
    data = _default()
    data["transport"] = transport
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)
