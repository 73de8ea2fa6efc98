"""Ids of the obligations the engine makes itself: readable, stable, collision-free.

Rules:
- An obligation booked from a contract line has the line's id (`ln_seats`).
- Units a modification adds to a line and accounts for as a separate contract
  (606-10-25-12) are the obligation `<line>+v<version>` (`ln_seats+v2`): the line and the
  contract version that added them. The id is made from the line's id, never from another
  split's, so a later split of the same line is `<line>+v<later version>`: never nested.
- A renewal a customer exercises under the practical alternative (606-10-55-45) is the
  obligation `<line>+r<n>`, n = 1 for the first renewal term, 2 for the second.
- An id already taken (a line whose own id looks like one of these, or a second split of
  one line in one version) gets a counter, the first one free: `ln_seats+v2.2`. Ids depend
  only on the history, so a replay makes the same ones.
- Ids made before this rule (`<line>@v<version>`) stay as stored: they are in databases,
  and the hub's canonical ids are built from them (`con/ln_seats@v2@v1`). Only obligations
  made from now on use `+`; the canonical id of a schedule version is
  `<contract>/<obligation>@v<schedule version>` (`con/ln_seats+v2@v1`), so `@v` is only
  ever a schedule version there.
- `line_of` reads the line back out of an id (before the first `+` or `@`).
"""

from __future__ import annotations

from collections.abc import Collection

SEPARATORS = ("+", "@")  # case files refuse both in the ids they state


def _free(wanted: str, taken: Collection[str]) -> str:
    if wanted not in taken:
        return wanted
    counter = 2
    while f"{wanted}.{counter}" in taken:
        counter += 1
    return f"{wanted}.{counter}"


def split_id(line_id: str, version: int, taken: Collection[str]) -> str:
    """The obligation of the units contract version `version` adds to `line_id`."""
    return _free(f"{line_id}+v{version}", taken)


def renewal_id(line_id: str, term: int, taken: Collection[str]) -> str:
    """The obligation of the `term`-th renewal of `line_id` (1 = the first)."""
    return _free(f"{line_id}+r{term}", taken)


def line_of(obligation_id: str) -> str:
    cut = min((i for i in (obligation_id.find(s) for s in SEPARATORS) if i >= 0),
              default=len(obligation_id))
    return obligation_id[:cut]
