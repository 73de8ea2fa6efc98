#!/usr/bin/env python3
"""Schedule generation of the embedded revenue engine, beside a plain Decimal baseline.

A benchmark, not a test: it prints figures and asserts only that each run did the work it
claims (every schedule row made, every schedule summing to its allocated price).

    .venv/bin/python bench/revrec.py [--contracts N] [--months 36] [--workers 2]
    .venv/bin/python bench/revrec.py --profile 2000     # cProfile of the engine figure only

Figures (same N contracts x M months, same number of rows):

1. baseline: a bare loop of Decimal cumulative rounding per contract
   (round(price x m / M) - round(price x (m - 1) / M) for m = 1..M), no engine objects;
2. engine: for each contract, `book_contract` (obligation, SSP, relative-SSP allocation)
   then `schedules` (cumulative revenue at each month end, rounded, traced to its revision),
   one ratable line of 1..50 seats at 120.00 per seat per year, term M months from the 1st.

Contracts are split over `--workers` processes (default: the number of CPUs, at most 2, as
the reference machine has 2 cores). Besides wall time, each figure reports the CPU time its
workers spent on the work (`time.process_time`, summed): on a shared machine the wall-time
ratio of two figures run one after the other moves with the others' load, the CPU-time
ratio much less. Peak memory is the largest resident set of any worker
(`ru_maxrss`), plus tracemalloc's peak of the Python heap over 200 contracts run again
after the timed loop (rows are streamed and summed, never kept, so it does not grow with N).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from finsync.domain.catalog import BillingFrequency, StandaloneSellingPrice
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.systems.revrec import ContractBooked, book_contract, schedules
from finsync.systems.revrec.timegrid import add_months

START = date(2026, 1, 1)
PRICE = Decimal("120.00")
CENT = Decimal("0.01")
BATCH = 2_000
TRACED = 200  # contracts measured under tracemalloc


@dataclass(frozen=True, slots=True)
class Tally:
    rows: int
    amount: Decimal
    seconds: float
    maxrss_kib: int
    traced_peak_b: int = 0
    cpu_s: float = 0.0  # CPU time of the work itself, summed over workers


def _price(i: int, months: int) -> Decimal:
    return PRICE * (1 + i % 50) * months / 12


def baseline(first: int, count: int, months: int) -> Tally:
    rows, amount = 0, Decimal(0)
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(first, first + count):
        price, before = _price(i, months), Decimal(0)
        for m in range(1, months + 1):
            upto = (price * m / months).quantize(CENT, ROUND_HALF_EVEN)
            amount += upto - before
            before = upto
            rows += 1
    return Tally(rows, amount, time.perf_counter() - began, _maxrss(),
                 cpu_s=time.process_time() - cpu)


def _booked(i: int, months: int, ssp: tuple[StandaloneSellingPrice, ...]) -> ContractBooked:
    end = add_months(START, months)
    line = ContractLine("ln", "prod_seat", "price_seat", 1 + i % 50, Money(PRICE, "USD"),
                        START, end)
    contract = SubscriptionContract(f"con_{i}", "cus", "le_us", "USD", START, end,
                                    BillingFrequency.ANNUAL, (line,))
    return ContractBooked(f"evt_{i}", contract, ssp)


def engine(first: int, count: int, months: int, trace: bool = False) -> Tally:
    ssp = (StandaloneSellingPrice("prod_seat", Money(PRICE, "USD"), date(2000, 1, 1)),)
    rows, amount, peak = 0, Decimal(0), 0
    if trace:
        tracemalloc.start()
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(first, first + count):
        for schedule in schedules(book_contract(_booked(i, months, ssp))):
            lines = schedule.lines
            summed = sum((li.amount.amount for li in lines), Decimal(0))
            assert summed == schedule.allocated_price.amount, schedule.reference
            rows += len(lines)
            amount += summed
    seconds, cpu_s = time.perf_counter() - began, time.process_time() - cpu
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Tally(rows, amount, seconds, _maxrss(), peak, cpu_s)


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(kind: str, contracts: int, months: int, workers: int) -> Tally:
    batches = [(start, min(BATCH, contracts - start)) for start in range(0, contracts, BATCH)]
    work = baseline if kind == "baseline" else engine
    rows, amount, rss, peak, done, cpu_s = 0, Decimal(0), 0, 0, 0, 0.0
    began = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(work, s, n, months) for s, n in batches]
        for future in futures:
            tally = future.result()
            rows, amount = rows + tally.rows, amount + tally.amount
            rss, done = max(rss, tally.maxrss_kib), done + 1
            cpu_s += tally.cpu_s
            if done % 10 == 0 or done == len(batches):
                print(f"  {kind}: {done * BATCH if done < len(batches) else contracts:>7} "
                      f"contracts, {time.perf_counter() - began:6.1f} s", file=sys.stderr)
    seconds = time.perf_counter() - began
    if kind == "engine":  # outside the timed loop: tracing slows Python down several times
        peak = engine(0, min(TRACED, contracts), months, trace=True).traced_peak_b
    return Tally(rows, amount, seconds, rss, peak, cpu_s)


def _expected(contracts: int, months: int) -> Decimal:
    return sum((_price(i, months).quantize(CENT, ROUND_HALF_EVEN) for i in range(contracts)),
               Decimal(0))


def profile(contracts: int, months: int) -> str:
    """cProfile's top entries (own time) of the engine figure over `contracts`, in process."""
    profiler = cProfile.Profile()
    profiler.runcall(engine, 0, contracts, months)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="print a profile of the engine over N contracts, nothing else")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.profile, args.months))
        return
    print(f"schedule generation: {args.contracts} contracts x {args.months} months, "
          f"{args.workers} worker(s), Python {sys.version.split()[0]}")
    results = {kind: _run(kind, args.contracts, args.months, args.workers)
               for kind in ("baseline", "engine")}
    want_rows, want_amount = args.contracts * args.months, _expected(args.contracts,
                                                                     args.months)
    base = results["baseline"]
    print(f"{'figure':<10}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'vs baseline':>13}"
          f"{'CPU s':>9}{'rows/CPU s':>12}{'vs (CPU)':>10}{'max RSS MiB':>13}")
    for kind, tally in results.items():
        assert tally.rows == want_rows, (kind, tally.rows, want_rows)
        assert tally.amount == want_amount, (kind, tally.amount, want_amount)
        rate, cpu_rate = tally.rows / tally.seconds, tally.rows / tally.cpu_s
        print(f"{kind:<10}{tally.rows:>12}{tally.seconds:>10.1f}{rate:>12.0f}"
              f"{rate / (base.rows / base.seconds):>13.3f}{tally.cpu_s:>9.1f}{cpu_rate:>12.0f}"
              f"{cpu_rate / (base.rows / base.cpu_s):>10.3f}{tally.maxrss_kib / 1024:>13.1f}")
    engine_peak = results["engine"].traced_peak_b
    print(f"engine Python heap peak over {min(TRACED, args.contracts)} contracts "
          f"(tracemalloc): {engine_peak / 1024 / 1024:.2f} MiB; every schedule sums to its "
          f"allocated price; total {want_amount} USD")


if __name__ == "__main__":
    main()
