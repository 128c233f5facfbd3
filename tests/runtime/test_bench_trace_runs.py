"""benchmarks/bench_trace.py runs end to end (crdtmem's side, a short prefix of the trace).

The benchmark is not a test of speed; this only keeps it runnable: real peers on loopback
websockets type the trace's first edits, a late joiner catches up, and every text must equal
what was typed (the script fails otherwise).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACE = Path("/work/shared/data/automerge-paper.json.gz")


@pytest.mark.skipif(not TRACE.exists(), reason="the editing trace is not on this machine")
def test_bench_trace_runs_on_a_prefix_of_the_trace() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_trace.py", "--only", "crdtmem", "--edits", "300", "--reps", "1",
         "--skip-xproc", "--window", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(done.stdout)
    assert result["crdtmem_final_text_ok"] is True
    assert result["crdtmem_late_join_bytes"] > 0 and result["crdtmem_late20k_bytes"] > 0


@pytest.mark.skipif(not TRACE.exists(), reason="the editing trace is not on this machine")
def test_bench_trace_runs_its_two_process_scenario() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_trace.py", "--only", "crdtmem", "--edits", "300", "--reps", "1",
         "--xproc-only"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(done.stdout)
    assert result["crdtmem_final_text_ok_xproc"] is True
    assert result["crdtmem_xproc_bytes_per_edit"] > 0 and result["crdtmem_xproc_visible_p99_ms"] > 0
