"""Intake's bearer tokens, looked up once a second instead of once a request.

At 1,000 requests a second, a database read per request to authenticate cost more than
everything else intake does (a pooled connection, three round trips, half a millisecond of
CPU). Intake may skip it because its group commit looks the tokens up again, one read per
batch, just before storing (`check`, or `check_in` the transaction that stores the batch):
what is stored was sent under a token active then.

Rules:
- Only a token found active is remembered, by its SHA-256 (never the secret), for
  `RECENT_S` and never past its expiry; an unknown, pending, revoked or expired token is
  looked up on every request, as on every other route.
- `check(ids)` says which tokens are no longer active, and forgets them: the next request
  with one of them is refused at once.
- A request refused for its payload before its batch is formed (a mapping refusal is
  recorded then) may have been authenticated by a look-up up to `RECENT_S` old: that is the
  only way a token revoked within the last second still reaches the database.
- Concurrent look-ups of one token are one look-up.
- At most `SIZE_MAX` tokens are remembered (the oldest forgotten first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from finsync.auth import tokens
from finsync.auth.local import NotAuthenticatedError
from finsync.auth.principal import Principal

RECENT_S = 1.0
SIZE_MAX = 1024


@dataclass(frozen=True, slots=True)
class Verified:
    principal: Principal
    token_id: str
    until: datetime  # trusted until then without a look-up


class RecentTokens:
    """Tokens verified active within the last `recent_s`, by their SHA-256."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], *,
                 recent_s: float = RECENT_S, size_max: int = SIZE_MAX) -> None:
        self._engine, self._clock = engine, clock
        self._recent, self._size_max = timedelta(seconds=recent_s), size_max
        self._known: OrderedDict[str, Verified] = OrderedDict()
        self._looking: dict[str, Future[Verified]] = {}  # look-ups in flight, by key
        self._lock = threading.Lock()

    def recent(self, secret: str) -> Verified | None:
        """The token's principal when it was found active less than `recent_s` ago; no
        I/O (None: look it up with `verify`)."""
        key = tokens.digest(secret)
        with self._lock:
            found = self._known.get(key)
        if found is None or found.until <= self._clock():
            return None
        return found

    def verify(self, secret: str) -> Verified:
        """Look the token up (`tokens.active_token`) and remember it when active;
        `NotAuthenticatedError` when it is not. Concurrent calls for one token share one
        look-up: when a token's second is over, every request in flight finds it so."""
        key = tokens.digest(secret)
        with self._lock:
            shared = self._looking.get(key)
            if shared is None:
                mine: Future[Verified] = Future()
                self._looking[key] = mine
        if shared is not None:
            return shared.result()
        try:
            found = self._look_up(secret)
            with self._lock:
                self._known[key] = found
                while len(self._known) > self._size_max:
                    self._known.popitem(last=False)
            mine.set_result(found)
            return found
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._looking[key]

    def _look_up(self, secret: str) -> Verified:
        now = self._clock()
        token = tokens.active_token(self._engine, secret, now)
        return Verified(token.as_principal(), token.id, min(now + self._recent,
                                                            token.expires_at))

    def check(self, ids: Collection[str]) -> Mapping[str, Exception]:
        """The error for each of `ids` that is no longer active (one read); those are
        forgotten."""
        return self._forget_gone(ids, tokens.active_ids(self._engine, ids, self._clock()))

    def check_in(self, conn: Connection, ids: Collection[str]) -> Mapping[str, Exception]:
        """`check` in the caller's transaction (the group commit's, which stores the batch
        right after)."""
        return self._forget_gone(ids, tokens.active_ids_in(conn, ids, self._clock()))

    def _forget_gone(self, ids: Collection[str],
                     active: set[str]) -> Mapping[str, Exception]:
        gone = set(ids) - active
        if gone:
            with self._lock:
                for key in [k for k, v in self._known.items() if v.token_id in gone]:
                    del self._known[key]
        return {token_id: NotAuthenticatedError(f"API token {token_id} is no longer active")
                for token_id in gone}
