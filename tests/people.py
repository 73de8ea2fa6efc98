"""Principals for tests that call the services directly (the CLI's come from `clikit`)."""

from __future__ import annotations

from finsync.auth.principal import (
    EXCEPTIONS_ACT,
    EXCEPTIONS_APPROVE,
    FINANCE_READ,
    PERIODS_MANAGE,
    Principal,
)

_FINANCE = (FINANCE_READ, EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, PERIODS_MANAGE)
ALICE = Principal.of("alice", _FINANCE)
BOB = Principal.of("bob", _FINANCE)
