"""What the connector knows of one Tryton company: ids of its accounts, journals, periods
and parties, read once and refreshed on a miss (a new fiscal year, a new account).

Rules:
- A code, journal or date the company lacks is a master-data mismatch, found before any
  write, never guessed.
- A customer becomes a party on first use, keyed by its finsync id in `party.code`.
- Balance-sheet accounts take their type (asset, liability, equity) from the top-level
  account above them; income-statement accounts are revenue or expense by their type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from finsync.connectors.tryton.rpc import TrytonClient
from finsync.domain.errors import ExceptionClass, PermanentError

_TOP_LEVEL_TYPES = (("liabilit", "liability"), ("equity", "equity"), ("asset", "asset"))


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    code: str
    name: str
    type: str  # asset | liability | equity | revenue | expense


@dataclass(frozen=True, slots=True)
class Period:
    id: int
    name: str
    start: date
    end: date  # inclusive, as Tryton keeps it


def _mismatch(message: str) -> PermanentError:
    return PermanentError(message, exception_class=ExceptionClass.MASTER_DATA_MISMATCH)


@dataclass
class Company:
    id: int
    name: str
    currency: str
    accounts: dict[str, Account] = field(default_factory=dict)
    journals: dict[str, int] = field(default_factory=dict)
    periods: list[Period] = field(default_factory=list)
    parties: dict[str, int] = field(default_factory=dict)
    customers: dict[int, str] = field(default_factory=dict)

    @property
    def context(self) -> dict[str, Any]:
        return {"company": self.id}

    @classmethod
    def load(cls, client: TrytonClient, name: str) -> Company:
        found = client.model("company.company", "search_read", [("party.name", "=", name)],
                             0, 1, None, ["id", "currency.code"])
        if not found:
            raise _mismatch(f"Tryton has no company {name!r} (run `finsync tryton bootstrap`)")
        company = cls(found[0]["id"], name, found[0]["currency."]["code"])
        company.refresh(client)
        return company

    def refresh(self, client: TrytonClient) -> None:
        ctx = self.context
        rows = client.model("account.account", "search_read", [("company", "=", self.id)],
                            0, None, None, ["code", "name", "parent", "type.statement",
                                            "type.revenue"], context=ctx)
        self.accounts = _classified(rows)
        self.journals = {j["code"]: j["id"] for j in client.model(
            "account.journal", "search_read", [], 0, None, None, ["code"], context=ctx)}
        rows = client.model("account.period", "search_read",
                            [("company", "=", self.id), ("type", "=", "standard")],
                            0, None, [("start_date", "ASC")],
                            ["name", "start_date", "end_date"], context=ctx)
        self.periods = [Period(p["id"], p["name"], p["start_date"], p["end_date"])
                        for p in rows]

    def account(self, client: TrytonClient, code: str) -> Account:
        if code not in self.accounts:
            self.refresh(client)
        if code not in self.accounts:
            raise _mismatch(f"Tryton company {self.name!r} has no account {code!r}")
        return self.accounts[code]

    def journal(self, client: TrytonClient, code: str) -> int:
        if code not in self.journals:
            self.refresh(client)
        if code not in self.journals:
            raise _mismatch(f"Tryton has no journal {code!r}")
        return self.journals[code]

    def period(self, client: TrytonClient, on: date) -> Period | None:
        found = self._period(on)
        if found is None:
            self.refresh(client)
            found = self._period(on)
        return found

    def _period(self, on: date) -> Period | None:
        return next((p for p in self.periods if p.start <= on <= p.end), None)

    def party(self, client: TrytonClient, customer_id: str) -> int:
        if customer_id not in self.parties:
            self.known_parties(client, [customer_id])
        if customer_id not in self.parties:
            try:
                (created,) = client.model("party.party", "create",
                                          [{"name": customer_id, "code": customer_id}],
                                          context=self.context)
            except PermanentError:
                # Another worker made it first (the code is unique): use theirs.
                self.known_parties(client, [customer_id])
                if customer_id not in self.parties:
                    raise
            else:
                self.remember(customer_id, created)
        return self.parties[customer_id]

    def known_parties(self, client: TrytonClient, customer_ids: list[str]) -> None:
        for row in client.model("party.party", "search_read", [("code", "in", customer_ids)],
                                0, None, None, ["code"], context=self.context):
            self.remember(row["code"], row["id"])

    def customer(self, client: TrytonClient, party_id: int) -> str:
        if party_id not in self.customers:
            (row,) = client.model("party.party", "read", [party_id], ["code"],
                                  context=self.context)
            self.remember(row["code"], party_id)
        return self.customers[party_id]

    def remember(self, customer_id: str, party_id: int) -> None:
        self.parties[customer_id], self.customers[party_id] = party_id, customer_id


def _classified(rows: list[dict[str, Any]]) -> dict[str, Account]:
    by_id = {r["id"]: r for r in rows}

    def top(row: dict[str, Any]) -> dict[str, Any]:
        while row.get("parent") in by_id and by_id[row["parent"]].get("parent") in by_id:
            row = by_id[row["parent"]]
        return row

    accounts = {}
    for row in rows:
        kind = row.get("type.") or {}
        if not row.get("code") or not kind:
            continue  # a view or the root: nothing posts there
        if kind.get("statement") == "income":
            account_type = "revenue" if kind.get("revenue") else "expense"
        else:
            heading = str(top(row)["name"]).lower()
            account_type = next((t for key, t in _TOP_LEVEL_TYPES if key in heading), "asset")
        accounts[row["code"]] = Account(row["id"], row["code"], row["name"], account_type)
    return accounts
