import random

from hypothesis import given
from hypothesis import strategies as st

from finsync.hub.backoff import delay_s


@given(st.integers(1, 60), st.integers(0, 2**32))
def test_delay_stays_within_the_exponential_ceiling_and_cap(attempt: int, seed: int) -> None:
    wait = delay_s(attempt, 0.5, 300, random.Random(seed))
    assert 0 <= wait <= min(300, 0.5 * 2 ** (attempt - 1))


def test_retry_after_from_the_target_is_honoured_within_the_cap() -> None:
    assert delay_s(1, 0.5, 300, random.Random(1), retry_after_s=42) == 42
    assert delay_s(1, 0.5, 300, random.Random(1), retry_after_s=4200) == 300
