"""The month close's revenue journal of a company of 10,000 contracts passes the limits the
packaged configuration gives its source (`[limits.revrec]`); the limits every other source
gets would refuse it (one body per entity, period and currency, a line per contract and
account)."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.domain.codec import draft_to_json
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import MappingError
from finsync.domain.events import RevenueJournalRecorded
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.json_limits import check_body
from finsync.domain.limits import check_draft
from finsync.domain.money import Money
from finsync.hub.close import SOURCE
from finsync.storage import jsonutil

CONTRACTS = 10_000
CLOSED = date(2026, 7, 31)


def _close_journal() -> DraftEnvelope:
    amount = Money(Decimal("1234.56"), "USD")
    lines = []
    for n in range(CONTRACTS):
        contract = (("revenue_contract", f"rc_{n:06d}_{'0' * 24}"),)
        lines += [JournalLine("2400", Side.DEBIT, amount, contract),
                  JournalLine("4000", Side.CREDIT, amount, contract)]
    entry = JournalEntry("je_close", "le_us", CLOSED, "Revenue 2026-07", tuple(lines),
                         "close:le_us:2026-07")
    return DraftEnvelope(RevenueJournalRecorded(entry), SOURCE, "journal_entry:je_close:v1",
                         datetime(2026, 8, 1, tzinfo=UTC), "close:le_us:2026-07")


def test_a_close_of_ten_thousand_contracts_fits_the_revrec_limits(tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    draft = _close_journal()
    body = jsonutil.dumps(draft_to_json(draft)).encode()
    check_body(body, config.limits_for(SOURCE))
    check_draft(draft, config.limits_for(SOURCE), date(2026, 8, 1))
    with pytest.raises(MappingError, match="json_items_max"):
        check_body(body, config.limits_for("default"))
