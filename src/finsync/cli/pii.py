"""Whether the person running a command may read personal data (`pii:read`).

The CLI acts as the principal its OS login is mapped to under `[auth]`; a login mapped to
none reads no personal data (views stay redacted; the command itself is not refused here).
When the CLI's own identity (`acting(config)`, FINSYNC_TOKEN or the mapped login) is
merged, `reads_pii` asks that principal instead.
"""

from __future__ import annotations

import getpass

from finsync.auth.local import NotAuthenticatedError, mapped_principal
from finsync.auth.principal import PII_READ
from finsync.config import FinsyncConfig


def reads_pii(config: FinsyncConfig) -> bool:
    scopes = {name: section.scopes for name, section in config.auth.principals.items()}
    try:
        principal = mapped_principal(getpass.getuser(), config.auth.os_users, scopes)
    except NotAuthenticatedError:
        return False
    return principal.can(PII_READ)
