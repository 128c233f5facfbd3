"""Run a module as ``python -m`` would, under cProfile timed by the main thread's CPU clock.

``python -m cProfile`` times with the wall clock: on a loaded machine a process that waits for
a core is charged to whatever function it was in, and time blocked in ``epoll`` dominates.
Timing with ``time.thread_time`` charges each function only the CPU it used. The stats are
written when the module returns or exits (a peer stopped by SIGTERM exits normally).

Used by ``bench_load.py --profile``: ``python benchmarks/cpu_profile.py OUT -m crdtmem peer ...``;
:func:`profiled` does the same for one process of a benchmark that spawns its own (``bench_websocket``,
``bench_trace``: set ``BENCH_PROFILE=DIR``).
An ``OUT`` ending in ``.json`` samples instead (``bench_load.py --sample``): every 0.2 ms of
CPU (or kernel tick) the running function and its callers are counted (``bench_receive.Sampler``), which adds
no cost per call, so a peer made of many small calls is not overstated the way cProfile
overstates it; the file holds the counts.
"""

from __future__ import annotations

import cProfile
import json
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
    if out.endswith(".json"):
        _sampled(out, module)
        return
    profiler = cProfile.Profile(time.thread_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(out)


def _sampled(out: str, module: str) -> None:
    from bench_receive import Sampler  # this script's directory is on the path

    with Sampler() as sampler:
        sampler.active = True
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit:
            pass
        finally:
            sampler.active = False
            with open(out, "w") as file:
                json.dump({"own": sampler.own, "inclusive": sampler.inclusive}, file)


if __name__ == "__main__":
    main()
