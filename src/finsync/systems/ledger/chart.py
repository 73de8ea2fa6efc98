"""Charts of accounts.

Rules:
- Account codes are unique within a chart; every account has one of five types.
- Each control role (accounts receivable, deferred revenue, …) is held by exactly one
  account; the posting rules find accounts by role, never by a hard-coded code.
- A role added after charts were stored (`OPTIONAL_ROLES`: bad debt, contra revenue,
  refund liability) may be missing from an
  older chart: the chart still loads, and only a posting that needs the role is refused
  (`invalid_chart`, naming it), so finance adds the account instead of finding the amount
  booked somewhere else.
- A chart is text (TOML) so that a user can replace the default with their own.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from finsync.systems.ledger.errors import ChartError, UnknownAccountError

DEFAULT_CHART = Path(__file__).with_name("default_chart.toml")


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        return self in (AccountType.ASSET, AccountType.EXPENSE)


class Role(StrEnum):
    CASH = "cash"
    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    CONTRACT_ASSET = "contract_asset"
    UNBILLED_RECEIVABLE = "unbilled_receivable"
    TAX_PAYABLE = "tax_payable"
    CUSTOMER_CREDITS = "customer_credits"
    REFUNDS_PAYABLE = "refunds_payable"
    DISPUTE_RECEIVABLE = "dispute_receivable"
    DEFERRED_REVENUE = "deferred_revenue"
    RETAINED_EARNINGS = "retained_earnings"
    REVENUE = "revenue"
    SALES_ALLOWANCES = "sales_allowances"
    FX_GAIN_LOSS = "fx_gain_loss"
    DISPUTE_FEES = "dispute_fees"
    CHARGEBACK_LOSSES = "chargeback_losses"
    BAD_DEBT = "bad_debt"  # receivables written off (an invoice marked uncollectible)
    # The revenue engine's journals: concessions (contra revenue) and consideration owed
    # back (606-10-32-10).
    CONTRA_REVENUE = "contra_revenue"
    REFUND_LIABILITY = "refund_liability"


OPTIONAL_ROLES: frozenset[Role] = frozenset({Role.BAD_DEBT, Role.CONTRA_REVENUE,
                                             Role.REFUND_LIABILITY})


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name: str
    type: AccountType
    role: Role | None = None


@dataclass(frozen=True, slots=True)
class Chart:
    accounts: tuple[Account, ...]
    # Look-ups by code and by role (every posted line asks), made once from `accounts`.
    _by_code: dict[str, Account] = field(init=False, repr=False, compare=False, hash=False)
    _by_role: dict[Role, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        codes = [a.code for a in self.accounts]
        if len(set(codes)) != len(codes):
            raise ChartError("account codes must be unique")
        roles = [a.role for a in self.accounts if a.role is not None]
        missing = set(Role) - OPTIONAL_ROLES - set(roles)
        if missing or len(set(roles)) != len(roles):
            raise ChartError(f"each control role needs exactly one account; missing: "
                             f"{', '.join(sorted(missing)) or 'none'}")
        object.__setattr__(self, "_by_code", {a.code: a for a in self.accounts})
        object.__setattr__(self, "_by_role", {a.role: a.code for a in self.accounts
                                              if a.role is not None})

    def get(self, code: str) -> Account:
        account = self._by_code.get(code)
        if account is None:
            raise UnknownAccountError(f"no account {code!r} in the chart")
        return account

    def code_for(self, role: Role) -> str:
        code = self._by_role.get(role)
        if code is None:
            raise ChartError(f"the chart has no account with role {role.value!r}: add one "
                             "to post this document")
        return code


def parse_chart(text: str) -> Chart:
    try:
        rows = tomllib.loads(text).get("account", [])
        accounts = tuple(
            Account(str(r["code"]), str(r["name"]), AccountType(r["type"]),
                    Role(r["role"]) if r.get("role") else None)
            for r in rows)
    except (tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise ChartError(f"invalid chart of accounts: {exc}") from exc
    return Chart(accounts)
