"""`finsync stripe verify`: the local mirror checked against what Stripe's API answers now.

Rules:
- Each mirrored object of a type the books read (`statement.FACTS`) and the client can fetch
  is fetched again, and the fields the books read are compared (`statement.facts`); every
  field that differs is one `Difference`. Other types are counted as not verified.
- At most `limit` objects a run (one API call each: Stripe rations calls), in type and id
  order; the answer says how many the mirror holds, so nobody reads "checked" as "all".
- An object Stripe refuses to answer (deleted, or a key that may not read it) is listed with
  Stripe's message; a transient failure (Stripe down, rate limited) stops the run and is
  raised, since a partial check must not read as a clean one.
- With `update`, an object that differs is recorded in the mirror as Stripe answered it,
  stamped with the time of the check (`Mirror.refresh`): the books read it from then on,
  and a later event replaces it as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

from sqlalchemy import Engine

from finsync.connectors.stripe import mirror as mirrored
from finsync.connectors.stripe.mirror import Mirror
from finsync.connectors.stripe.objects import Obj
from finsync.connectors.stripe.statement import FACTS, facts
from finsync.dbsnapshot import read_snapshot
from finsync.domain.errors import PermanentError


class Fetcher(Protocol):
    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]: ...


@dataclass(frozen=True, slots=True)
class Difference:
    object_type: str
    object_id: str
    field: str
    mirrored: Any
    stripe: Any

    def as_json(self) -> dict[str, Any]:
        return {"object": f"{self.object_type}:{self.object_id}", "field": self.field,
                "mirrored": self.mirrored, "stripe": self.stripe}


@dataclass(frozen=True, slots=True)
class Verification:
    source: str
    held: int  # objects the mirror holds for the source
    checked: int
    differences: tuple[Difference, ...]
    refused: tuple[tuple[str, str], ...]  # ("type:id", Stripe's message)
    not_verified: Mapping[str, int] = field(default_factory=dict)  # by type
    updated: int = 0

    @property
    def clean(self) -> bool:
        return not self.differences and not self.refused

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "held": self.held, "checked": self.checked,
                "clean": self.clean, "differences": [d.as_json() for d in self.differences],
                "refused": [{"object": ref, "message": m} for ref, m in self.refused],
                "not_verified": dict(self.not_verified), "updated": self.updated}


class Verifier:
    def __init__(self, engine: Engine, source: str, client: Fetcher, fetchable: Collection[str],
                 clock: Callable[[], datetime]) -> None:
        self._engine, self._source, self._client = engine, source, client
        self._fetchable, self._clock = frozenset(fetchable), clock
        self._mirror = Mirror(engine)

    def verify(self, *, limit: int | None = 1_000, update: bool = False) -> Verification:
        if limit is not None and limit < 1:
            raise ValueError("limit must be positive")
        held, skipped, chosen = self._chosen(limit)
        differences: list[Difference] = []
        refused: list[tuple[str, str]] = []
        updated = 0
        for obj in chosen:
            kind, ident = str(obj["object"]), str(obj["id"])
            try:
                answered = dict(self._client.fetch(kind, ident))
            except PermanentError as exc:
                refused.append((f"{kind}:{ident}", str(exc)))
                continue
            found = compared(obj, answered)
            differences += found
            if found and update:
                stamp = int(self._clock().timestamp())
                updated += self._mirror.refresh(self._source, answered, stamp)
        return Verification(self._source, held, len(chosen), tuple(differences),
                            tuple(refused), dict(skipped), updated)

    def _chosen(self, limit: int | None) -> tuple[int, Counter[str], list[Obj]]:
        """(objects held, held but not verifiable by type, the objects to check)."""
        held, skipped = 0, Counter[str]()
        chosen: list[Obj] = []
        with read_snapshot(self._engine) as conn:
            for kind, _, _ in mirrored.held(conn, self._source):
                held += 1
                if kind not in FACTS or kind not in self._fetchable:
                    skipped[kind] += 1
            for kind in sorted(set(FACTS) & self._fetchable):
                room = None if limit is None else limit - len(chosen)
                items = mirrored.objects(conn, self._source, kind)
                try:
                    chosen += islice(items, room)
                finally:
                    items.close()  # the cursor, when the limit stopped reading it
        return held, skipped, chosen


def compared(mine: Obj, theirs: Obj) -> list[Difference]:
    """The fields the books read that differ between the mirror's copy and Stripe's."""
    kind, ident = str(mine["object"]), str(mine["id"])
    before, now = facts(mine), facts(theirs)
    return [Difference(kind, ident, name, before[name], now[name])
            for name in before if before[name] != now[name]]

