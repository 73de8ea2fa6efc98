"""A stream of lifecycle events as a careless source sends it, and a client that posts it
over HTTP to several intake nodes the way a source's retrying sender would.

Rules:
- The stream is `builders.lifecycle_stream` (contracts with amendments, their invoices and
  payments), each event displaced up to `window` places and one in `dup_every` sent again
  up to `4 * window` places later: out of order and partly twice, as webhooks arrive. The
  window bounds how long a payment waits for its invoice, so the settle time does not
  grow with the length of the stream.
- Request i goes to node `i % len(ports)`; a refused or dropped connection, a timeout or a
  503 is retried on the next node after a short pause, until a 2xx: the client never
  knows whether a dropped request was stored, so a retry may be a duplicate, which the
  hub must absorb. Any other answer is a refusal, kept and reported, never retried.
- Everything is counted (answers, retries, refusals) for the test to assert on.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.builders import lifecycle_stream

EVENTS_PER_CUSTOMER = 9  # lifecycle_stream with 2 amendments: 3 x (contract, invoice, payment)
RETRY_PAUSE_S = 0.05
REQUEST_TIMEOUT_S = 10.0
RETRIED = (OSError, http.client.HTTPException)  # refused, reset, dropped, timed out


def shuffled_stream(customers: int, seed: int, *, window: int = 100,
                    dup_every: int = 9) -> list[bytes]:
    """`customers` lifecycles (9 events each), shuffled within `window` places, one event
    in `dup_every` sent twice."""
    lines = lifecycle_stream(customers=customers, amendments=2).lines()
    rng = random.Random(seed)
    keyed = [(i + rng.uniform(0, window), line) for i, line in enumerate(lines)]
    again = rng.sample(range(len(lines)), len(lines) // dup_every)
    keyed += [(i + rng.uniform(window, 4 * window), lines[i]) for i in again]
    keyed.sort(key=lambda pair: pair[0])
    return [line for _, line in keyed]


@dataclass
class Tally:
    """What the client saw; the lock guards it across the posting threads."""

    answers: Counter[int] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[int, int, bytes]] = field(default_factory=list)  # (i, status, body)
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Posts `bodies` to `/v1/sources/<source>/events` on `ports` from `threads` threads,
    in the background (`start`, then `join`)."""

    def __init__(self, bodies: Sequence[bytes], ports: Sequence[int], token: str, *,
                 source: str = "billing", threads: int = 8) -> None:
        self.bodies, self.ports, self.token = bodies, list(ports), token
        self.path = f"/v1/sources/{source}/events"
        self.tally = Tally()
        self._next = iter(range(len(bodies)))
        self._next_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post_all, name=f"load-{n}", daemon=True)
                         for n in range(threads)]
        self.started_at = 0.0
        self.seconds = 0.0

    def start(self) -> Load:
        self.started_at = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), (
            f"the load was not through in {timeout_s} s: {self.tally.accepted} accepted")
        self.seconds = time.perf_counter() - self.started_at

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def done(self) -> float:
        """The share of the stream accepted so far."""
        return self.tally.accepted / max(1, len(self.bodies))

    def _take(self) -> int | None:
        with self._next_lock:
            return next(self._next, None)

    def _post_all(self) -> None:
        connections: dict[int, http.client.HTTPConnection] = {}
        try:
            while (i := self._take()) is not None:
                self._post(i, connections)
        finally:
            for conn in connections.values():
                conn.close()

    def _post(self, i: int, connections: dict[int, http.client.HTTPConnection]) -> None:
        node = i % len(self.ports)
        while True:
            port = self.ports[node]
            status, body, error = self._send(i, port, connections)
            if status is not None and 200 <= status < 300:
                with self.tally.lock:
                    self.tally.answers[status] += 1
                    self.tally.accepted += 1
                return
            if status is not None and status != 503:
                with self.tally.lock:
                    self.tally.answers[status] += 1
                    self.tally.refusals.append((i, status, body[:300]))
                return
            with self.tally.lock:
                self.tally.retries[error or "503"] += 1
            node = (node + 1) % len(self.ports)
            time.sleep(RETRY_PAUSE_S)

    def _send(self, i: int, port: int, connections: dict[int, http.client.HTTPConnection]
              ) -> tuple[int | None, bytes, str | None]:
        conn = connections.get(port)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
            connections[port] = conn
        try:
            conn.request("POST", self.path, body=self.bodies[i], headers={
                "authorization": f"Bearer {self.token}", "content-type": "application/json"})
            response = conn.getresponse()
            body = response.read()
        except RETRIED as exc:
            conn.close()
            del connections[port]
            return None, b"", type(exc).__name__
        if response.status == 503:
            conn.close()  # the node may be going away: a fresh connection next time
            del connections[port]
        return response.status, body, None
