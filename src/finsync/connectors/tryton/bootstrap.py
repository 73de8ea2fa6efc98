"""Books that finsync can post to, on a Tryton database whose modules are activated.

What `finsync tryton bootstrap` makes, each step only if it is missing (so a second run
changes nothing and says so): currencies with a rate, the company (wizard
`company.company.config`), its chart from the "Universal Chart" template (wizard
`account.create_chart`, then its default receivable/payable properties), the accounts
finsync posts to that the template lacks, a strict move sequence, and fiscal years with
monthly periods. The journals (REV, CASH, MISC) ship with the account module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.connectors.tryton.accounts import EXTRA_ACCOUNTS, AccountMap, ExtraAccount
from finsync.connectors.tryton.rpc import TrytonClient

CHART_TEMPLATE = "account.account_template_root_en"
# Currencies a company may book, and each one's rate against the base (USD = 1).
CURRENCIES: dict[str, tuple[str, str, Decimal]] = {
    "USD": ("U.S. Dollar", "$", Decimal("1")),
    "EUR": ("Euro", "€", Decimal("0.90")),
}
RATES_FROM = date(2026, 1, 1)


@dataclass(frozen=True, slots=True)
class BookSpec:
    company: str  # the company's party name
    currency: str = "USD"
    years: tuple[int, ...] = (2026, 2027)
    accounts: AccountMap = field(default_factory=AccountMap)


@dataclass
class BootstrapReport:
    company_id: int = 0
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


def _one(client: TrytonClient, model: str, domain: list[Any],
         context: dict[str, Any] | None = None) -> int | None:
    ids: list[int] = client.model(model, "search", domain, 0, 1, None, context=context)
    return ids[0] if ids else None


def _create(client: TrytonClient, model: str, values: dict[str, Any],
            context: dict[str, Any] | None = None) -> int:
    ids: list[int] = client.model(model, "create", [values], context=context)
    return ids[0]


def _wizard(client: TrytonClient, name: str, steps: Sequence[tuple[str, dict[str, Any]]],
            context: dict[str, Any]) -> None:
    session, _start, _end = client.call(f"wizard.{name}.create", context)
    try:
        for state, data in steps:
            client.call(f"wizard.{name}.execute", session, data, state, context)
    finally:
        client.call(f"wizard.{name}.delete", session, context)


def _currencies(client: TrytonClient, report: BootstrapReport) -> dict[str, int]:
    ids = {}
    for code, (name, symbol, rate) in CURRENCIES.items():
        found = _one(client, "currency.currency", [("code", "=", code)])
        if found is None:
            found = _create(client, "currency.currency", {
                "name": name, "code": code, "symbol": symbol, "digits": 2,
                "rounding": Decimal("0.01")})
            report.created.append(f"currency {code}")
        if _one(client, "currency.currency.rate",
                [("currency", "=", found), ("date", "=", RATES_FROM)]) is None:
            _create(client, "currency.currency.rate",
                    {"currency": found, "date": RATES_FROM, "rate": rate})
            report.created.append(f"rate {code} {rate} from {RATES_FROM}")
        ids[code] = found
    return ids


def _company(client: TrytonClient, spec: BookSpec, currency: int,
             report: BootstrapReport) -> int:
    found = _one(client, "company.company", [("party.name", "=", spec.company)])
    if found is None:
        party = _one(client, "party.party", [("name", "=", spec.company)]) or \
            _create(client, "party.party", {"name": spec.company})
        _wizard(client, "company.company.config", [
            ("company", {}), ("add", {"company": {"party": party, "currency": currency}})],
            {})
        found = _one(client, "company.company", [("party.name", "=", spec.company)])
        assert found is not None, "the company wizard created no company"
        report.created.append(f"company {spec.company}")
    user = client.user_id
    client.model("res.user", "write", [user], {"companies": [("add", [found])],
                                              "company": found})
    return found


def _chart(client: TrytonClient, company: int, report: BootstrapReport) -> None:
    ctx = {"company": company}
    if _one(client, "account.account", [("company", "=", company)], ctx) is not None:
        return
    roots = client.model("account.account.template", "search_read", [("parent", "=", None)],
                         0, None, None, ["xml_id"])
    template = next((r["id"] for r in roots if r["xml_id"] == CHART_TEMPLATE), None)
    if template is None:
        raise ValueError(f"Tryton has no chart template {CHART_TEMPLATE}")
    _wizard(client, "account.create_chart", [
        ("account", {}),
        ("create_account", {"account": {"company": company, "account_template": template}}),
    ], ctx)

    def code(value: str) -> int:
        found = _one(client, "account.account",
                     [("company", "=", company), ("code", "=", value)], ctx)
        assert found is not None, f"the chart has no account {value}"
        return found

    _wizard(client, "account.create_chart", [
        ("properties", {}),
        ("create_properties", {"properties": {
            "company": company, "account_receivable": code("1.2.1"),
            "account_payable": code("2.1.1")}}),
    ], ctx)
    report.created.append("chart of accounts (Universal Chart)")


def _extra_accounts(client: TrytonClient, company: int, extras: Sequence[ExtraAccount],
                    report: BootstrapReport) -> None:
    ctx = {"company": company}
    for extra in extras:
        if _one(client, "account.account",
                [("company", "=", company), ("code", "=", extra.code)], ctx) is not None:
            continue
        (parent,) = client.model("account.account", "search_read",
                                 [("company", "=", company), ("code", "=", extra.parent)],
                                 0, 1, None, ["id"], context=ctx)
        (like,) = client.model("account.account", "search_read",
                               [("company", "=", company), ("code", "=", extra.like)],
                               0, 1, None, ["type"], context=ctx)
        _create(client, "account.account", {
            "company": company, "code": extra.code, "name": extra.name,
            "parent": parent["id"], "type": like["type"],
            "party_required": extra.party_required}, ctx)
        report.created.append(f"account {extra.code} {extra.name}")


def _move_sequence(client: TrytonClient, company: int, label: str,
                   report: BootstrapReport) -> int:
    """A strict sequence of its own (Tryton wants one per fiscal year)."""
    ctx, name = {"company": company}, f"Account Move {label}"
    sequence = _one(client, "ir.sequence.strict",
                    [("name", "=", name), ("company", "=", company)], ctx)
    if sequence is None:
        kind = _one(client, "ir.sequence.type", [("name", "=", "Account Move")])
        sequence = _create(client, "ir.sequence.strict",
                           {"name": name, "sequence_type": kind, "company": company}, ctx)
        report.created.append(f"move sequence {name}")
    return sequence


def _fiscal_years(client: TrytonClient, company: int, spec: BookSpec,
                  report: BootstrapReport) -> None:
    ctx = {"company": company}
    for year in spec.years:
        if _one(client, "account.fiscalyear",
                [("company", "=", company), ("name", "=", str(year))], ctx) is not None:
            continue
        fiscal_year = _create(client, "account.fiscalyear", {
            "name": str(year), "company": company,
            "move_sequence": _move_sequence(client, company, f"{year} ({spec.company})", report),
            "start_date": date(year, 1, 1), "end_date": date(year, 12, 31)}, ctx)
        client.model("account.fiscalyear", "create_period", [fiscal_year], context=ctx)
        report.created.append(f"fiscal year {year} with 12 monthly periods")


def bootstrap(client: TrytonClient, specs: Sequence[BookSpec]) -> list[BootstrapReport]:
    """Set up (or check) each company's books; says what it had to create."""
    reports = []
    for spec in specs:
        report = BootstrapReport()
        currencies = _currencies(client, report)
        if spec.currency not in currencies:
            raise ValueError(f"bootstrap knows no currency {spec.currency!r}")
        report.company_id = _company(client, spec, currencies[spec.currency], report)
        _chart(client, report.company_id, report)
        _extra_accounts(client, report.company_id, EXTRA_ACCOUNTS, report)
        _fiscal_years(client, report.company_id, spec, report)
        reports.append(report)
    return reports
