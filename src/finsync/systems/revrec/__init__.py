"""The embedded revenue engine (ASC 606 / IFRS 15): a pure rules core, no I/O.

Rules:
- State is a value (`RevenueContractState`): `book_contract` makes it, `apply_event` returns
  the next one, and an event id already applied changes nothing.
- Everything is `Decimal` money in the contract's currency, rounded only where named:
  a line's consideration once, allocations by largest remainder, schedules by cumulative
  rounding (round(cumulative) - already recognised).
- Modules: `pattern`, `timegrid`, `consideration`, `allocation`, `modification`, `terms`,
  `obligation`, `progress`, `measure`, `state`, `event`, `booking`, `amendment`,
  `price_change`, `concession`, `change_order`, `point_in_time`, `engine`, `series`,
  `schedule`, `balance`, `journal`, `errors`, `obligation_id`, `option`, `material_right`. See
  docs/revrec/engine.md.
"""

from finsync.systems.revrec.allocation import (
    AllocatedShare,
    AllocationInput,
    AllocationMethod,
    Bundle,
    SspRange,
    VariableConsideration,
    allocate,
)
from finsync.systems.revrec.balance import ContractBalances, balances
from finsync.systems.revrec.booking import revenue_contract_id
from finsync.systems.revrec.engine import apply_event, book_contract, replay
from finsync.systems.revrec.event import (
    ChangeOrderApproved,
    ContractBooked,
    ContractModified,
    CostsReported,
    CreditMemoApplied,
    CreditTreatment,
    InvoiceRecorded,
    PriceChangeKind,
    ProgressReported,
    RefundRecorded,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    UsageRecorded,
)
from finsync.systems.revrec.journal import AccountMap, movement, period_journal, period_journals
from finsync.systems.revrec.modification import (
    ModificationDecision,
    ModificationFacts,
    ModificationTreatment,
)
from finsync.systems.revrec.pattern import Granularity, RecognitionPattern
from finsync.systems.revrec.schedule import (
    ObligationSchedule,
    RemainingPerformanceObligations,
    Waterfall,
    obligation_schedule,
    remaining_performance_obligations,
    schedules,
    waterfall,
)
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.terms import RecognitionTerms

__all__ = [
    "AccountMap", "AllocatedShare", "AllocationInput", "AllocationMethod", "Bundle",
    "ChangeOrderApproved", "ContractBalances", "ContractBooked", "ContractModified",
    "CostsReported", "CreditMemoApplied", "CreditTreatment", "Granularity",
    "InvoiceRecorded", "ModificationDecision", "ModificationFacts", "ModificationTreatment",
    "ObligationSchedule", "PriceChangeKind", "ProgressReported", "RecognitionPattern",
    "RecognitionTerms", "RefundRecorded", "RemainingPerformanceObligations",
    "RevenueContractState", "RevenueEvent", "SspRange", "TransactionPriceChanged", "UnitsDelivered",
    "UsageRecorded", "VariableConsideration", "Waterfall", "allocate", "apply_event",
    "balances", "book_contract", "movement", "obligation_schedule", "period_journal",
    "period_journals",
    "remaining_performance_obligations", "replay", "revenue_contract_id", "schedules",
    "waterfall",
]
