#!/usr/bin/env python3
"""Revenue reports over the engine's position rows, beside a plain SQL read of those rows.

A benchmark, not a test: it prints figures and checks only that each read returned what it
should (every contract's position, the waterfall summing to what the rows hold).

    .venv/bin/python bench/revrec_positions.py [--contracts 10000,100000] [--months 36]
        [--backends sqlite,postgresql] [--states-max 10000]

The book: N USD contracts of legal entity le_us, one ratable line of 1..50 seats at 120.00
per seat per year, term M months, starting on the 1st of one of the 12 months of 2026, each
with its first year invoiced on its start date. 600 distinct contracts (seats x start month)
are booked and invoiced by the engine (`book_contract`, `apply_event`); every other contract
is one of them under its own ids (state JSON, rows and schedule ids rewritten), stored as
`RevenueService` stores a state: the contract row and its position rows
(`position_write.write`). Set-up is not timed.

Figures, each a median of `--repeat` runs, at month start D = 2027-07-01 (mid-term):

1. **plain read** (the limit): `SELECT` of the N `revrec_positions` rows at D (every
   column), fetched as tuples;
2. **positions**: `EmbeddedRevenue.positions("le_us", D)`, what reconciliation asks ~30 times
   a run: every contract's RevenuePosition (balances, transaction price, credits);
3. **waterfall**: `RevenueService.revenue_by_month` over the M + 12 months from 2026-01-01:
   the entity's revenue per month, summed in SQL;
4. **journal**: `RevenueService.period_journal` for June 2027 (what a close asks): one line
   per contract and account;
5. **states** (up to `--states-max` contracts): what `positions` did before the rows, every
   state decoded and its balances computed (`position_of`); shown for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from sqlalchemy import Connection, Engine, Table, insert, select

from finsync.connectors.embedded.revenue import EmbeddedRevenue
from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.ids import derive_id
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.storage.db import make_engine
from finsync.systems.revrec import ContractBooked, InvoiceRecorded
from finsync.systems.revrec import tables as t
from finsync.systems.revrec.engine import apply_event, book_contract
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.position import (
    ContractPositions,
    contract_positions,
    position_of,
)
from finsync.systems.revrec.serial import dumps_state, loads_state
from finsync.systems.revrec.service import RevenueService
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import add_months

ENTITY, PRICE, DAY = "le_us", Money.of("120.00", "USD"), date(2027, 7, 1)
JUNE = Period(date(2027, 6, 1), date(2027, 7, 1))
ROWS_PER_INSERT = 5_000


@dataclass(frozen=True, slots=True)
class Template:
    state: RevenueContractState
    text: str
    rows: ContractPositions


def _template(seats: int, month: int, months: int) -> Template:
    start = date(2026, month + 1, 1)
    end = add_months(start, months)
    tag = f"t{seats:02}m{month:02}"
    line = ContractLine("ln", "prod_seat", "price_seat", seats, PRICE, start, end)
    contract = SubscriptionContract(f"con_{tag}", f"cus_{tag}", ENTITY, "USD", start, end,
                                    BillingFrequency.ANNUAL, (line,))
    ssp = (StandaloneSellingPrice("prod_seat", PRICE, date(2000, 1, 1)),)
    state = book_contract(ContractBooked(f"evt_{tag}", contract, ssp))
    year = PRICE * seats
    doc = DocumentLine("1", "prod_seat", "seats", seats, year, Money.of("0", "USD"), start,
                       add_months(start, 12), contract_line_id="ln")
    invoice = Invoice(f"inv_{tag}", f"INV-{tag}", contract.customer_id, contract.id, 1, ENTITY,
                      "USD", start, start, (doc,), year, Money.of("0", "USD"), year)
    state = apply_event(state, InvoiceRecorded(f"evt_inv_{tag}", invoice))
    rows = contract_positions(state)
    assert rows is not None
    return Template(state, dumps_state(state), rows)


def _populate(engine: Engine, n: int, months: int, templates: dict[int, Template]) -> None:
    """N contracts stored as the service stores them, each a template under its own ids."""
    contracts, positions, obligations, ob_positions, billings = [], [], [], [], []
    for i in range(n):
        tpl = templates[i % 600]
        old_rc, old_con = tpl.state.revenue_contract_id, tpl.state.contract.id
        rc, con = f"rc_{i:07}", f"con_{i:07}"
        text = tpl.text.replace(old_rc, rc).replace(old_con, con)
        contracts.append({"id": rc, "subscription_contract_id": con, "legal_entity": ENTITY,
                          "currency": "USD", "contract_version": 1, "row_version": 1,
                          "state": text, "customer_id": tpl.state.contract.customer_id,
                          "positions_from": tpl.rows.first_day,
                          "positions_to": tpl.rows.last_day,
                          "transaction_price_minor": tpl.rows.transaction_price_minor})
        for r in tpl.rows.positions:
            positions.append({"revenue_contract_id": rc, "day": r.day,
                              "billed_minor": r.billed, "recognised_minor": r.recognised,
                              "deferred_revenue_minor": r.deferred_revenue,
                              "contract_asset_minor": r.contract_asset,
                              "unbilled_receivable_minor": r.unbilled_receivable})
            ob_positions += [{"revenue_contract_id": rc, "ordinal": k, "day": r.day,
                              "recognised_minor": v} for k, v in enumerate(r.obligations)]
        obligations += [{"revenue_contract_id": rc, "ordinal": o.ordinal,
                         "obligation_id": o.obligation_id,
                         "schedule_id": derive_id("sch", rc, o.obligation_id),
                         "version": o.version, "allocated_minor": o.allocated_minor}
                        for o in tpl.rows.obligations]
        billings += [{"revenue_contract_id": rc, "seq": b.seq, "document_id": b.document_id,
                      "obligation_id": b.obligation_id, "issued_on": b.issued_on,
                      "amount_minor": b.amount_minor} for b in tpl.rows.billings]
        if len(positions) >= ROWS_PER_INSERT or i == n - 1:
            with engine.begin() as conn:
                for table, rows in ((t.contracts, contracts), (t.positions, positions),
                                    (t.obligations, obligations),
                                    (t.obligation_positions, ob_positions),
                                    (t.billings, billings)):
                    if rows:
                        _insert(conn, table, rows)
                        rows.clear()


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Set-up only: COPY on PostgreSQL (an executemany of a million rows takes minutes on a
    shared machine), executemany on SQLite."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    names = [c.name for c in table.columns]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row.get(name) for name in names])


def _timed(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def _measure(url: str, n: int, months: int, repeat: int, states_max: int,
             templates: dict[int, Template], say: Callable[[str], None]) -> dict[str, float]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        began = time.perf_counter()
        _populate(engine, n, months, templates)
        say(f"  {n:,} contracts stored in {time.perf_counter() - began:.1f} s")
        service = RevenueService(engine, lambda _p, _d: None)
        port = EmbeddedRevenue("revrec", service)
        p = t.positions
        plain = select(*p.c).where(p.c.day == DAY)

        def read_plain() -> object:
            with engine.connect() as conn:
                return conn.execute(plain).all()

        figures: dict[str, float] = {}
        figures["plain read"], rows = _timed(read_plain, repeat)
        figures["positions"], found = _timed(lambda: port.positions(ENTITY, DAY), repeat)
        assert isinstance(rows, list) and isinstance(found, list) and len(found) == n
        assert sum(r.recognised_minor for r in rows) == sum(
            int(x.recognised.amount * 100) for x in found)
        figures["waterfall"], fall = _timed(lambda: service.revenue_by_month(
            ENTITY, date(2026, 1, 1), add_months(date(2026, 1, 1), months + 12)), repeat)
        figures["journal"], _entry = _timed(lambda: service.period_journals(ENTITY, JUNE),
                                            repeat)
        if n <= states_max:
            def from_states() -> object:
                with engine.connect() as conn:
                    texts = conn.execute(select(t.contracts.c.state).where(
                        t.contracts.c.legal_entity == ENTITY).order_by(t.contracts.c.id))
                    return [position_of(loads_state(x), DAY) for (x,) in texts]
            figures["states"], old = _timed(from_states, 1)
            assert isinstance(old, list) and [replace(o, revenue_contract_id="") for o in old] \
                == [replace(x, revenue_contract_id="") for x in service.positions(ENTITY, DAY)]
        del fall
        return figures
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", default="10000,100000")
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--states-max", type=int, default=10_000)
    parser.add_argument("--tmpdir", default=None)
    backends.add_run_options(parser, repeat_figures="1 to 4")
    args = backends.parse_args(parser, argv)
    sizes = [int(x) for x in args.contracts.split(",")]
    _console, say = backends.make_console()
    began = time.perf_counter()
    templates = {s * 12 + m: _template(s + 1, m, args.months)
                 for s in range(50) for m in range(12)}
    say(f"600 template contracts booked and invoiced in {time.perf_counter() - began:.1f} s")
    notes = backends.machine_notes()
    results: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        def run(backend: backends.Backend) -> None:
            for n in sizes:
                with backend.fresh() as url:
                    say(f"{backend.name}: {n:,} contracts")
                    results.append((backend.name, n, _measure(
                        url, n, args.months, args.repeat, args.states_max, templates, say)))

        backends.run_backends(args.backends, Path(tmp), run, notes, say,
                              sqlite_prefix="revrec", unit="figure")
    print(f"\nrevenue reports over position rows, at {DAY} (median of {args.repeat})")
    print(f"{'backend':<12}{'contracts':>10}{'figure':>12}{'seconds':>10}"
          f"{'contracts/s':>14}{'vs plain':>10}")
    for name, n, figures in results:
        base = figures["plain read"]
        for figure, seconds in figures.items():
            print(f"{name:<12}{n:>10,}{figure:>12}{seconds:>10.3f}{n / seconds:>14,.0f}"
                  f"{base / seconds:>10.3f}")
    for key, value in notes:
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
