"""Run a module as ``python -m`` would, under cProfile timed by the main thread's CPU clock.

``python -m cProfile`` times with the wall clock: on a loaded machine a process that waits for
a core is charged to whatever function it was in, and time blocked in ``epoll`` dominates.
Timing with ``time.thread_time`` charges each function only the CPU it used. The stats are
written when the module returns or exits (a peer stopped by SIGTERM exits normally).

Used by ``bench_load.py --profile``: ``python benchmarks/cpu_profile.py OUT -m crdtmem peer ...``;
:func:`profiled` does the same for one process of a benchmark that spawns its own (``bench_websocket``,
``bench_trace``: set ``BENCH_PROFILE=DIR``).
"""

from __future__ import annotations

import cProfile
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def profiled(fn: Callable[[], T], role: str) -> T:
    """Run ``fn``; with ``BENCH_PROFILE=DIR`` set, under cProfile timed by this thread's CPU clock,
    its stats written to ``DIR/<role>.prof``. Call it around one process's whole work."""
    directory = os.environ.get("BENCH_PROFILE")
    if not directory:
        return fn()
    profiler = cProfile.Profile(time.thread_time)
    try:
        return profiler.runcall(fn)
    finally:
        profiler.dump_stats(os.path.join(directory, f"{role}.prof"))


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        raise SystemExit("usage: cpu_profile.py OUT -m MODULE [ARGS...]")
    out, module = sys.argv[1], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    profiler = cProfile.Profile(time.thread_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
