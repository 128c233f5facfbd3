"""Shared by the scenario scripts: run a scenario, keep its JSON report and plot next to the script."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from crdtmem.simulation import Scenario, Simulation
from crdtmem.simulation.plot import plot_report
from crdtmem.simulation.report import build_report, dumps, summary_lines

logging.getLogger("crdtmem").setLevel(logging.ERROR)  # refusals are counted in the report


def run(name: str, scenario: Scenario, *, title: str | None = None, plot: bool = True) -> dict[str, Any]:
    """Run ``scenario``; write ``<name>.json`` (and ``<name>.png``) here; print the summary."""
    sim = Simulation(scenario)
    sim.run()
    report = build_report(sim)
    (HERE / f"{name}.json").write_text(dumps(report))
    if plot:
        plot_report(report, HERE / f"{name}.png", title=title)
    print(f"== {name}")
    for line in summary_lines(report):
        print("  " + line)
    return report


def write_json(name: str, data: Any) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
