"""The ledger-port contract, run unchanged against a real trytond on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.contract.ledger_port import LedgerHarness, LedgerPortContract
from tests.external.tryton_fixtures import TrytonBooks


@pytest.fixture
def harness(tryton_books: TrytonBooks) -> LedgerHarness:
    return LedgerHarness(tryton_books.ledger(), tryton_books.close_period,
                         revenue_account="4.2.2", deferred_account="2.2.2")


class TestTrytonLedger(LedgerPortContract):
    pass
