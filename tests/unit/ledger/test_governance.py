import pytest

from finsync.systems.ledger.errors import LedgerBusyError
from finsync.systems.ledger.governance import Governor


def test_budget_per_minute_refuses_with_the_wait_then_admits_again() -> None:
    now = [0.0]
    governor = Governor(calls_per_minute=2, clock=lambda: now[0])
    for _ in range(2):
        with governor.call():
            pass
    now[0] = 15.0
    with pytest.raises(LedgerBusyError) as caught, governor.call():
        pass
    assert caught.value.retry_after_s == 45.0
    now[0] = 60.0
    with governor.call():
        pass


def test_concurrency_cap_refuses_a_call_beyond_it() -> None:
    governor = Governor(concurrency=1)
    with governor.call(), pytest.raises(LedgerBusyError, match="concurrent"), governor.call():
        pass
    with governor.call():  # the slot is free again
        pass
