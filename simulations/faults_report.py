"""Run the slow fault suite and write ``simulations/results/faults.json`` plus a one-page summary.

Pieces (each a pytest run in a subprocess, figures passed back through JSON files or printed
JSON lines):

* fuzzing: ``tests/faults/test_fuzz.py`` with ``CRDTMEM_FUZZ_EXAMPLES`` examples per test
  (the default gives >= 100,000 cases), then atheris (coverage-guided) if it is installed;
* floods: ``tests/faults/test_floods.py`` scaled by ``--flood-scale``;
* load: ``tests/faults/test_load.py -m slow`` (20 peers x 60 s at 5 writes/s each by default;
  at 10 writes/s each the 20 processes use ~1.9 of this 2-core machine's cores and latency
  grows with the backlog, see ``results/faults_load_10_per_s.json``);
* every other ``tests/faults/test_*.py`` (crash points, network partitions): its slow tests if
  it has any, else its default ones; lines it prints as ``label: {json}`` are collected.

Usage::

    python simulations/faults_report.py                    # the full run (about 10 minutes)
    python simulations/faults_report.py --load-seconds 20  # a shorter load phase
    python simulations/faults_report.py --quick            # a smoke run of every piece
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "simulations" / "results"
MINE = {"test_fuzz.py", "test_floods.py", "test_load.py"}
SUMMARY_LINE = re.compile(r"^\s*([A-Za-z][\w \-]*):\s*(\{.*\})\s*$")


def pytest(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=timeout)
        out, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = "timeout"
    tail = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    summaries = []
    for line in out.splitlines():
        m = SUMMARY_LINE.match(line)
        if m:
            try:
                summaries.append({"label": m.group(1).strip(), **json.loads(m.group(2))})
            except ValueError:
                pass
    failures = [line for line in out.splitlines()
                if line.startswith(("FAILED", "ERROR", "E   ")) or "Falsifying example" in line][:40]
    return {"args": args, "exit": code, "seconds": round(time.monotonic() - started, 1),
            "result": tail[-1].strip("= ") if tail else out[-2000:], "failures": failures,
            "summaries": summaries}


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=6000, help="Hypothesis examples per fuzz test")
    parser.add_argument("--atheris-runs", type=int, default=100_000, help="atheris executions (0: skip)")
    parser.add_argument("--flood-scale", type=float, default=3.0)
    parser.add_argument("--load-peers", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--load-rate", type=float, default=5.0, help="writes per second per peer")
    parser.add_argument("--others-timeout", type=float, default=1800, help="seconds allowed per other test file")
    parser.add_argument("--skip", action="append", default=[], help="skip a piece: fuzz, atheris, floods, load, others")
    parser.add_argument("--reuse", help="a work directory of an earlier run: reuse the pieces it holds")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script itself")
    args = parser.parse_args(argv)
    if args.quick:
        args.fuzz_examples, args.atheris_runs, args.flood_scale = 50, 2000, 1.0
        args.load_peers, args.load_seconds = 4, 3.0
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="faults-report-"))
    reused = {p.stem for p in work.glob("*.json")} if args.reuse else set()
    old_runs = load_json(work / "runs.json")
    args.skip += sorted(reused & {"fuzz", "atheris", "floods", "load", "others"})
    runs: dict[str, Any] = {}
    started = time.monotonic()

    runs.update({k: v for k, v in old_runs.items() if k in reused or k.startswith("test_")})
    fuzz: dict = load_json(work / "fuzz.json")
    if "fuzz" not in args.skip:
        path = work / "fuzz.json"
        runs["fuzz"] = pytest(["tests/faults/test_fuzz.py"], {"CRDTMEM_FUZZ_EXAMPLES": str(args.fuzz_examples),
                                                               "CRDTMEM_FUZZ_STATS": str(path)}, 3600)
        fuzz = load_json(path)
    atheris: dict = load_json(work / "atheris.json")
    if "atheris" not in args.skip and args.atheris_runs and importlib.util.find_spec("atheris") is None:
        # The test extra installs atheris where a wheel exists (CPython 3.11, Linux x86_64).
        runs["atheris"] = {"exit": "skipped", "result": f"atheris has no wheel for Python "
                           f"{platform.python_version()} on {platform.machine()}; coverage-guided fuzzing skipped"}
    elif "atheris" not in args.skip and args.atheris_runs:
        path = work / "atheris.json"
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "tests.faults.test_fuzz", str(args.atheris_runs), str(path)], cwd=ROOT,
                env={**os.environ, "CRDTMEM_ATHERIS_CORPUS": str(work / "atheris-corpus")},
                capture_output=True, text=True, timeout=1800)
            done = re.findall(r"Done (\d+) runs", proc.stderr)
            runs["atheris"] = {"exit": proc.returncode, "seconds": round(time.monotonic() - t0, 1),
                               "result": done[-1] + " runs" if done else proc.stderr[-1500:]}
            atheris = load_json(path)
        except (OSError, subprocess.TimeoutExpired) as exc:
            runs["atheris"] = {"exit": "error", "result": str(exc)}
    floods: dict = load_json(work / "floods.json")
    if "floods" not in args.skip:
        path = work / "floods.json"
        runs["floods"] = pytest(["tests/faults/test_floods.py"], {"CRDTMEM_FLOOD_SCALE": str(args.flood_scale),
                                                                   "CRDTMEM_FLOOD_STATS": str(path)}, 900)
        floods = load_json(path)
    load: dict = load_json(work / "load.json")
    if "load" not in args.skip:
        path = work / "load.json"
        runs["load"] = pytest(["tests/faults/test_load.py", "-m", "slow"], {
            "CRDTMEM_LOAD_PEERS": str(args.load_peers), "CRDTMEM_LOAD_SECONDS": str(args.load_seconds),
            "CRDTMEM_LOAD_RATE": str(args.load_rate), "CRDTMEM_LOAD_STATS": str(path)},
            args.load_seconds * 3 + 600)
        load = load_json(path)
    others: dict[str, Any] = load_json(work / "others.json")
    if "others" not in args.skip:
        for test in sorted((ROOT / "tests" / "faults").glob("test_*.py")):
            if test.name in MINE:
                continue
            marker = "slow" if "mark.slow" in test.read_text() else "not slow"
            others[test.stem] = pytest([str(test.relative_to(ROOT)), "-m", marker], {}, args.others_timeout)
            runs[test.stem] = {k: v for k, v in others[test.stem].items() if k != "summaries"}
        (work / "others.json").write_text(json.dumps(others))
    (work / "runs.json").write_text(json.dumps(runs, default=str))

    report = build(args, runs, fuzz, atheris, floods, load, others, time.monotonic() - started)
    out = RESULTS / "faults.json"
    out.write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    page = RESULTS / "faults_summary.txt"
    page.write_text(summary(report) + "\n")
    print(summary(report))
    print(f"\nwritten: {out.relative_to(ROOT)}, {page.relative_to(ROOT)}")
    ok = report["writes_lost"] == 0 and all(str(r.get("exit")) == "0" for r in runs.values())
    return 0 if ok else 1


def _sum_field(summaries: list[dict], *names: str) -> int:
    total = 0
    for s in summaries:
        for name in names:
            if isinstance(s.get(name), int):
                total += s[name]
                break
    return total


def build(args, runs, fuzz, atheris, floods, load, others, seconds) -> dict[str, Any]:
    refusals: collections.Counter[str] = collections.Counter()
    hostile_by_target: collections.Counter[str] = collections.Counter()
    for stats in (fuzz, atheris):
        for target, counter in stats.get("refusals", {}).items():
            for reason, n in counter.items():
                if reason != "accepted":
                    refusals[reason] += n
        hostile_by_target.update(stats.get("cases", {}))
    flood_inputs = 0
    for name, figures in floods.items():
        for reason, n in (figures.get("refusals") or {}).items():
            refusals[reason] += n
        flood_inputs += figures.get("frames_sent", 0) + figures.get("chunks_sent", 0) + figures.get("connections", 0)
    for name in ("hello_then_stall", "half_http_upgrade", "oversized_frame"):
        if name in floods:
            flood_inputs += 1
    other_summaries = [s for r in others.values() for s in r.get("summaries", [])]
    faults: collections.Counter[str] = collections.Counter()
    for s in other_summaries:
        for key, value in s.items():
            if isinstance(value, int) and not isinstance(value, bool) and (
                    key.startswith("kills") or key in ("kills", "partitions", "link_cuts", "flaps", "cuts")):
                faults[f"{s['label']}: {key}"] += value
    faults["hostile inputs (fuzz + floods)"] = sum(hostile_by_target.values()) + flood_inputs
    if floods:
        faults["flood attacks"] = len(floods)
    writes_made = load.get("writes_made", 0) + _sum_field(other_summaries, "writes_made", "writes_acked", "writes")
    writes_lost = load.get("writes_lost", 0) + _sum_field(other_summaries, "writes_lost", "lost")
    return {
        "work_dir": str(args.reuse or ""),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1),
        "parameters": {k: v for k, v in vars(args).items()},
        "faults_injected": dict(faults),
        "writes_made": writes_made,
        "writes_lost": writes_lost,
        "hostile_inputs": {
            "total": sum(hostile_by_target.values()) + flood_inputs,
            "fuzz_hypothesis": fuzz.get("total", 0),
            "fuzz_atheris": atheris.get("total", 0),
            "flood_frames_and_connections": flood_inputs,
            "by_target": dict(hostile_by_target),
            "accepted_by_target": {t: c.get("accepted", 0) for s in (fuzz, atheris)
                                   for t, c in s.get("refusals", {}).items()},
        },
        "refusals_by_reason": dict(refusals.most_common()),
        "floods": floods,
        "load": load,
        "other_suites": {k: v.get("summaries", []) for k, v in others.items()},
        "runs": runs,
        "missing_caps": [
            "incoming buffer per connection is bounded by websockets max_queue (64 frames) x "
            "max_frame_bytes (1 MiB) plus a reassembly budget of max_message_bytes (64 MiB); with "
            "LinkLimits(max_connections=256) the total is bounded, but at 256 x 128 MiB, far above a sane "
            "budget: there is no budget shared across connections",
        ],
    }


def summary(r: dict[str, Any]) -> str:
    lines = ["crdtmem fault suite", "=" * 60, f"ran {r['seconds']} s; writes made {r['writes_made']}, "
             f"writes lost {r['writes_lost']} (must be 0)", "", "faults injected:"]
    lines += [f"  {k:<44} {v}" for k, v in r["faults_injected"].items()]
    h = r["hostile_inputs"]
    lines += ["", f"hostile inputs: {h['total']} (Hypothesis {h['fuzz_hypothesis']}, atheris {h['fuzz_atheris']}, "
              f"floods {h['flood_frames_and_connections']})"]
    lines += [f"  {k:<22} {v}" for k, v in sorted(h["by_target"].items())]
    lines += ["", "refused, by reason:"]
    lines += [f"  {k:<34} {v}" for k, v in r["refusals_by_reason"].items()]
    if r["floods"]:
        lines += ["", "floods (honest peers' write-to-converge while under attack):"]
        for name, f in r["floods"].items():
            extra = {k: v for k, v in f.items() if k not in ("refusals",) and not k.startswith("honest")}
            lines.append(f"  {name:<18} honest max {f.get('honest_max_s')} s over {f.get('honest_rounds')} rounds; "
                         + ", ".join(f"{k}={v}" for k, v in extra.items()))
    load = r["load"]
    if load.get("error"):
        lines += ["", f"load: FAILED: {load['error'][:300]}"]
    elif load:
        rss = load["rss_mb"]
        lines += ["", f"load: {load['peers']} peers x {load['seconds']} s at {load['rate_per_peer']} writes/s each",
                  f"  writes {load['writes_made']} ({load['writes_per_s']}/s), delivered {load['deliveries']} "
                  f"({load['deliveries_per_s']}/s), lost {load['writes_lost']}",
                  f"  write-to-visible p50 {load['latency_s']['p50']} s, p99 {load['latency_s']['p99']} s, "
                  f"max {round(load['latency_s']['max'] or 0, 3)} s",
                  f"  RSS MB start {min(rss['start'])}-{max(rss['start'])}, end {min(rss['end'])}-{max(rss['end'])}, "
                  f"max growth {rss['max_growth']}"]
    for name, summaries in r["other_suites"].items():
        for s in summaries:
            lines.append(f"{name}: " + json.dumps(s))
    lines += ["", "runs:"]
    lines += [f"  {k:<20} exit {v.get('exit')}  {v.get('seconds', '?')} s  {v.get('result')}" for k, v in r["runs"].items()]
    lines += ["", "caps missing:"] + [f"  - {c}" for c in r["missing_caps"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
