"""Where finsync's postings land in a Tryton chart: role → account code, and journals.

Rules:
- Posting rules name roles (receivable, deferred revenue …), never codes; the map turns a
  role into the code of an account of the company's chart. The defaults are the
  "Universal Chart" (`account.account_template_root_en`) plus the accounts that
  `finsync tryton bootstrap` adds for roles the template lacks.
- A journal entry names accounts by code. `aliases` lets it use finsync's own chart codes
  (the embedded ledger's "2400" deferred revenue) for Tryton's; any other code is taken as
  a Tryton code and refused by the ERP if it does not exist.
- Receivable and customer-credit lines carry the customer's party; the AR subledger of the
  connector is the lines of those two accounts, grouped by party and document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    RECEIVABLE = "receivable"
    CUSTOMER_CREDITS = "customer_credits"
    DEFERRED_REVENUE = "deferred_revenue"
    REVENUE = "revenue"
    SALES_ALLOWANCES = "sales_allowances"
    TAX_PAYABLE = "tax_payable"
    CASH = "cash"
    DISPUTE_RECEIVABLE = "dispute_receivable"
    DISPUTE_FEES = "dispute_fees"
    CHARGEBACK_LOSSES = "chargeback_losses"
    CONTRA_REVENUE = "contra_revenue"  # the revenue engine's concessions
    REFUND_LIABILITY = "refund_liability"  # consideration owed back (606-10-32-10)


class Journal(StrEnum):
    REVENUE = "revenue"  # invoices and credit memos
    CASH = "cash"  # payments and refunds
    GENERAL = "general"  # journal entries (revenue recognition …)


@dataclass(frozen=True, slots=True)
class ExtraAccount:
    """An account bootstrap adds when the template has none for a role: it goes under the
    account coded `parent` and takes the account type of the account coded `like`."""

    code: str
    name: str
    parent: str
    like: str
    party_required: bool = False


DEFAULT_CODES: Mapping[Role, str] = MappingProxyType({
    Role.RECEIVABLE: "1.2.1",  # Accounts, notes and loans receivable (party required)
    Role.CUSTOMER_CREDITS: "2.2.5",  # added by bootstrap
    Role.DEFERRED_REVENUE: "2.2.2",  # Deferred income (unearned revenue)
    Role.REVENUE: "4.2.2",  # Recognised over time: services
    Role.SALES_ALLOWANCES: "4.3.2",  # Consideration paid (payable) to customers
    Role.TAX_PAYABLE: "2.2.3",  # Accrued taxes (other than payroll)
    Role.CASH: "1.1.1",  # Cash and cash equivalents
    Role.DISPUTE_RECEIVABLE: "1.2.4",  # added by bootstrap
    Role.DISPUTE_FEES: "5.2.4",  # added by bootstrap
    Role.CHARGEBACK_LOSSES: "5.2.5",  # added by bootstrap
    Role.CONTRA_REVENUE: "4.3.4",  # added by bootstrap
    Role.REFUND_LIABILITY: "2.2.6",  # added by bootstrap
})

# Accounts the Universal Chart lacks; bootstrap creates them (idempotently, by code). A
# customer's credit (unapplied cash, an over-credit) is owed to that customer: a liability
# carried per party, like the receivable.
EXTRA_ACCOUNTS: tuple[ExtraAccount, ...] = (
    ExtraAccount("2.2.5", "Customer Credits", parent="2.2.0", like="2.2.4",
                 party_required=True),
    # Card disputes: the money the processor withdrew while a dispute is open is owed by
    # the card network, not by a party; its fees and what is lost are expenses of their own.
    ExtraAccount("1.2.4", "Disputed Funds Receivable", parent="1.2.0", like="1.2.3"),
    ExtraAccount("5.2.4", "Dispute Fees", parent="5.2.0", like="5.2.2"),
    ExtraAccount("5.2.5", "Chargeback Losses", parent="5.2.0", like="5.2.3"),
    # The revenue engine's journals: concessions beside consideration paid to customers
    # (the template's 4.3.3 is "Other Adjustments"), and consideration owed back (606-10-32-10)
    # among the other liabilities.
    ExtraAccount("4.3.4", "Contra Revenue: Concessions", parent="4.3.0", like="4.3.2"),
    ExtraAccount("2.2.6", "Refund Liability", parent="2.2.0", like="2.2.4"),
)

DEFAULT_JOURNALS: Mapping[Journal, str] = MappingProxyType({
    Journal.REVENUE: "REV", Journal.CASH: "CASH", Journal.GENERAL: "MISC"})

# The embedded ledger's default chart codes, for journal entries built against it.
FINSYNC_ALIASES: Mapping[str, str] = MappingProxyType({
    "1000": DEFAULT_CODES[Role.CASH],
    "1200": DEFAULT_CODES[Role.RECEIVABLE],
    "2100": DEFAULT_CODES[Role.TAX_PAYABLE],
    "2300": DEFAULT_CODES[Role.CUSTOMER_CREDITS],
    "2400": DEFAULT_CODES[Role.DEFERRED_REVENUE],
    "4000": DEFAULT_CODES[Role.REVENUE],
    "4900": DEFAULT_CODES[Role.SALES_ALLOWANCES],
    "1270": DEFAULT_CODES[Role.DISPUTE_RECEIVABLE],
    "6500": DEFAULT_CODES[Role.DISPUTE_FEES],
    "6510": DEFAULT_CODES[Role.CHARGEBACK_LOSSES],
    "4910": DEFAULT_CODES[Role.CONTRA_REVENUE],
    "2450": DEFAULT_CODES[Role.REFUND_LIABILITY],
})


@dataclass(frozen=True, slots=True)
class AccountMap:
    codes: Mapping[Role, str] = field(default_factory=lambda: dict(DEFAULT_CODES))
    journals: Mapping[Journal, str] = field(default_factory=lambda: dict(DEFAULT_JOURNALS))
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(FINSYNC_ALIASES))
    recognised_on_invoice: frozenset[str] = frozenset()
    credit_reason_roles: Mapping[str, Role] = field(
        default_factory=lambda: {"goodwill": Role.SALES_ALLOWANCES})

    def code(self, role: Role) -> str:
        return self.codes.get(role, DEFAULT_CODES[role])

    def resolve(self, code: str) -> str:
        """A journal entry's account code as a Tryton code."""
        return self.aliases.get(code, code)

    def invoice_credit(self, product_id: str) -> Role:
        return Role.REVENUE if product_id in self.recognised_on_invoice else \
            Role.DEFERRED_REVENUE

    def credit_memo_debit(self, reason: str) -> Role:
        return self.credit_reason_roles.get(reason, Role.DEFERRED_REVENUE)

    @property
    def subledger(self) -> tuple[str, str]:
        """The codes whose lines make up the AR subledger (open items per document)."""
        return self.code(Role.RECEIVABLE), self.code(Role.CUSTOMER_CREDITS)
