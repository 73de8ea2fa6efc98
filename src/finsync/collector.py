"""Pausing Python's cyclic garbage collector around a batch of fresh objects.

Rules:
- A batch (a page of intake, a ledger batch) makes tens of thousands of short-lived
  objects that hold no cycle: reference counting frees them, yet they set off collection
  passes that cost as much as a fifth of the batch. The collector is paused for the batch.
- Only a call that found it running restarts it: one that found it paused (another thread
  inside its own batch) leaves it to that one, so the collector is never left off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()
