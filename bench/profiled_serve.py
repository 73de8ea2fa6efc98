#!/usr/bin/env python3
"""`finsync serve` with every thread of the process under cProfile (bench/serve.py
--profile): `profiled_serve.py OUT CLOCK serve ARGS…`; the threads' statistics, merged, are
written to OUT when the process ends (SIGINT). CLOCK `cpu` times each thread's own CPU
(where the work goes), `wall` the elapsed time (where requests wait, blocked calls too).
With `--workers` > 1 only the supervising process is profiled, not uvicorn's workers nor the
pipeline's process."""

from __future__ import annotations

import atexit
import cProfile
import pstats
import sys
import threading
import time
from typing import Any

_profiles: list[cProfile.Profile] = []
_clock = time.perf_counter


def _start_profile(_frame: Any, _event: str, _arg: Any) -> None:
    """The first profile event of a new thread: hand the thread to a cProfile of its own
    (a hook on `Thread.run` would miss the subclasses that override it, as anyio's
    worker threads do)."""
    sys.setprofile(None)
    profile = cProfile.Profile(_clock)
    _profiles.append(profile)
    profile.enable()


def _dump(out: str) -> None:
    merged: pstats.Stats | None = None
    for profile in _profiles:
        profile.disable()
        try:
            stats = pstats.Stats(profile)
        except TypeError:  # a thread that never ran a profiled call
            continue
        merged = stats if merged is None else merged.add(stats)
    if merged is not None:
        merged.dump_stats(out)


def main(argv: list[str]) -> Any:
    global _clock
    out, clock, rest = argv[0], argv[1], argv[2:]
    _clock = time.thread_time if clock == "cpu" else time.perf_counter
    threading.setprofile(_start_profile)
    main_thread = cProfile.Profile(_clock)
    _profiles.append(main_thread)
    atexit.register(_dump, out)
    from finsync.cli.main import main as cli

    sys.argv = ["finsync", *rest]
    main_thread.enable()
    return cli()


if __name__ == "__main__":
    main(sys.argv[1:])
