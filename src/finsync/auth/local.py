"""The principal a local command acts as: the OS login, mapped in the configuration.

A name typed on the command line is never an identity. A login the configuration does not
map is refused (`not_authenticated`), with what to add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from finsync.auth.principal import Principal
from finsync.domain.errors import DomainError

ANY_LOGIN = "*"


class NotAuthenticatedError(DomainError):
    code = "not_authenticated"


class ForbiddenError(DomainError):
    code = "forbidden"


def mapped_principal(login: str, os_users: Mapping[str, str],
                     principals: Mapping[str, Iterable[str]]) -> Principal:
    """The principal `login` is mapped to (else the `"*"` mapping), with its scopes."""
    name = os_users.get(login) or os_users.get(ANY_LOGIN)
    if name is None:
        raise NotAuthenticatedError(
            f"the OS user {login!r} acts as no principal: map it under [auth.os_users] in "
            f"finsync.toml (e.g. {login} = \"controller\") to a principal under "
            "[auth.principals], or set FINSYNC_TOKEN to an API token")
    return Principal.of(name, principals.get(name, ()))


def require(principal: Principal, scope: str) -> Principal:
    """`principal` if it holds `scope`, else `ForbiddenError` naming what is missing."""
    if not principal.can(scope):
        raise ForbiddenError(f"{principal.id} lacks the scope {scope!r}")
    return principal
