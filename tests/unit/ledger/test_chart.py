from pathlib import Path

import pytest

from finsync.systems.ledger.chart import DEFAULT_CHART, Role, parse_chart
from finsync.systems.ledger.errors import ChartError, UnknownAccountError


def test_default_chart_holds_every_control_role_once() -> None:
    chart = parse_chart(DEFAULT_CHART.read_text())
    assert chart.code_for(Role.ACCOUNTS_RECEIVABLE) == "1200"
    assert chart.code_for(Role.DEFERRED_REVENUE) == "2400"


def test_chart_missing_a_role_is_refused() -> None:
    text = DEFAULT_CHART.read_text().replace('role = "fx_gain_loss"', "")
    with pytest.raises(ChartError, match="fx_gain_loss"):
        parse_chart(text)


def test_duplicate_codes_are_refused(tmp_path: Path) -> None:
    text = DEFAULT_CHART.read_text() + '\n[[account]]\ncode = "1000"\nname = "x"\ntype = "asset"\n'
    with pytest.raises(ChartError, match="unique"):
        parse_chart(text)


def test_unknown_account_names_the_code() -> None:
    with pytest.raises(UnknownAccountError, match="'9999'"):
        parse_chart(DEFAULT_CHART.read_text()).get("9999")


def test_user_chart_replaces_the_default(tmp_path: Path) -> None:
    import tomllib

    from sqlalchemy import create_engine

    from finsync.bootstrap import build_ledger_service
    from finsync.config import DEFAULT_CONFIG, parse_config

    custom = DEFAULT_CHART.read_text().replace('code = "1200"', 'code = "11000"')
    (tmp_path / "chart.toml").write_text(custom)
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["ledger"]["entities"][0]["chart"] = "chart.toml"
    config = parse_config(data, tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        service = build_ledger_service(config, engine)
        with engine.connect() as conn:
            from finsync.systems.ledger.records import load_chart

            assert load_chart(conn, "le_us").code_for(Role.ACCOUNTS_RECEIVABLE) == "11000"
            assert load_chart(conn, "le_eu").code_for(Role.ACCOUNTS_RECEIVABLE) == "1200"
        assert service.has_entity("le_eu")
    finally:
        engine.dispose()
