"""A private asyncio event loop on a thread of its own: how sync code drives nats-py.

Rules:
- nats-py is asyncio; finsync's workers and request handlers are plain threads. Each
  `JetStream` owns one loop thread; its coroutines run there and the calling thread waits
  for the result, up to a timeout after which the coroutine is cancelled.
- Every nats-py error is translated at this boundary (`errors.translate`); a defect
  propagates unchanged.
- The thread is a daemon: a process that forgets `close()` still exits.
- A loop thread does not survive `fork`: a child process that uses its parent's client is
  refused at once (a programmer error), instead of waiting for a thread that is not there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from finsync.streaming.errors import TransportUnavailableError, translate

T = TypeVar("T")
STOP_S = 5.0


class EventLoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._closed = False
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self.loop.run_forever,
                                        name=f"finsync-nats:{name}", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float, what: str) -> T:
        """The result of `coro`, run on the loop; a translated error if it fails, and
        `TransportUnavailableError` if it has not finished within `timeout_s`."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("EventLoopThread.run called from its own loop: it would deadlock")
        if os.getpid() != self._pid:
            coro.close()
            raise RuntimeError("a NATS client cannot cross a fork: make one in each process")
        if self._closed:
            coro.close()
            raise TransportUnavailableError(f"{what}: the connection is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.CancelledError:
            raise TransportUnavailableError(f"{what}: the connection was closed") from None
        except Exception as exc:
            if isinstance(exc, concurrent.futures.TimeoutError) and not future.done():
                future.cancel()
                raise TransportUnavailableError(
                    f"{what}: no answer within {timeout_s} s") from None
            typed = translate(exc, what)
            if typed is None:
                raise
            raise typed from exc

    def stop(self) -> None:
        """Ends the loop (after cancelling what still runs on it) and its thread."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        cancelled = asyncio.run_coroutine_threadsafe(_cancel_others(), self.loop)
        try:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                cancelled.result(STOP_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_S)
            if not self._thread.is_alive():
                self.loop.close()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
