"""The HTTP routes of the app, by (method, path template), for the scope matrix of
`tests/integration/test_api_auth.py`: each module lists the routes of one part of the API
(`CALLS`), so that a new route is added beside its own page's, and a route missing from
every list fails `test_every_route_is_in_the_matrix`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    """A request that succeeds with the right credential; the scope its route declares
    (None: any valid token), `{source}` standing for the path's `source`. `body` is sent as
    is (JSON for an action)."""

    method: str
    url: str
    declared: str | None
    ok: int = 200
    body: bytes | None = None
    source: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str | None:
        """The scope this request needs."""
        return None if self.declared is None else self.declared.format(source=self.source)


Calls = dict[tuple[str, str], Call]
