"""Draw a run's divergence over time, with partitions, heals, crashes and convergence marked.

Works from the JSON report alone, so a saved report can be re-plotted without re-running.
Uses matplotlib's non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_report", "plot_sweep"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _spans(timeline: list[dict[str, Any]], start: str, end: str, end_time: float, key: str | None = None):
    """[(t0, t1, label)] for start/end event pairs (matched by ``key`` when given)."""
    open_at: dict[Any, float] = {}
    spans = []
    for event in timeline:
        ident = tuple(event[key]) if key and isinstance(event.get(key), list) else event.get(key)
        if event["event"] == start:
            open_at[ident] = event["t"]
        elif event["event"] == end and ident in open_at:
            spans.append((open_at.pop(ident), event["t"], ident))
    spans += [(t0, end_time, ident) for ident, t0 in open_at.items()]
    return spans


def plot_report(report: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG of ``report``'s divergence series and traffic to ``path``; returns the path."""
    plt = _pyplot()
    series = report["divergence"]
    t = series["t"]
    share = [100 * x for x in series["share"]]
    end_time = report["virtual_time"]
    fig, (ax, ax2, ax3) = plt.subplots(
        3, 1, figsize=(9, 6.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]}
    )
    timeline = report.get("timeline", [])
    for i, (t0, t1, _) in enumerate(_spans(timeline, "partition", "heal", end_time)):
        for axis in (ax, ax2, ax3):
            axis.axvspan(t0, t1, color="tab:red", alpha=0.10, label="partitioned" if i == 0 and axis is ax else None)
    heals = [e["t"] for e in timeline if e["event"] == "heal"]
    for i, h in enumerate(heals):
        ax.axvline(h, color="tab:green", lw=1.5, ls="--", label="heal" if i == 0 else None)
    for i, (t0, t1, _) in enumerate(_spans(timeline, "link-down", "link-up", end_time, key="link")):
        ax.axvspan(t0, t1, color="tab:orange", alpha=0.12, label="link down" if i == 0 else None)
    crashes = [e for e in timeline if e["event"] == "crash"]
    restarts = [e for e in timeline if e["event"] == "restart"]
    if crashes:
        ax.plot([e["t"] for e in crashes], [101] * len(crashes), "v", color="black", ms=7, label="crash", clip_on=False)
    if restarts:
        ax.plot([e["t"] for e in restarts], [101] * len(restarts), "^", color="tab:blue", ms=7, label="restart", clip_on=False)
    ax.step(t, share, where="post", color="tab:purple", lw=1.6, label="divergent peer pairs")
    conv = report.get("convergence", {})
    if report.get("converged") and conv.get("convergence_time_after_heal") is not None:
        at = conv["measured_from"] + conv["convergence_time_after_heal"]
        ax.axvline(at, color="tab:purple", lw=1, ls=":", label=f"converged (+{conv['convergence_time_after_heal']:.2f}s)")
    ax.set_ylabel("peer pairs with different roots (%)")
    ax.set_ylim(-2, 104)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    # traffic per sample interval
    totals = series["bytes"]
    rates = [0.0]
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        rates.append((totals[i] - totals[i - 1]) / dt / 1024 if dt > 0 else 0.0)
    ax2.step(t, rates, where="post", color="tab:gray", lw=1.2)
    ax2.set_ylabel("KB/s sent")
    ax2.grid(alpha=0.3)
    if "missing_batches_max" in series:
        ax3.step(t, series["missing_batches_max"], where="post", color="tab:brown", lw=1.2, label="max")
        ax3.step(t, series["missing_batches_mean"], where="post", color="tab:brown", lw=1, ls=":", label="mean")
        ax3.legend(loc="upper right", fontsize=7)
    ax3.set_ylabel("batches missing\n(per-peer lag)", fontsize=9)
    ax3.set_xlabel("virtual time (s)")
    ax3.grid(alpha=0.3)
    scen = report.get("scenario", {})
    verdict = "converged" if report.get("converged") else "NOT converged"
    heading = title or (
        f"{report['peers']} peers, {report['topology']['spec']}, latency {scen.get('latency')}, "
        f"loss {scen.get('loss', 0):g} ({scen.get('transport', 'stream')}) - {verdict}"
    )
    ax.set_title(heading, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(rows: list[dict[str, Any]], x: str, path: str | Path, *, title: str, xlabel: str) -> Path:
    """Two panels against parameter ``x``: convergence time and bytes (one point per row; a
    row's optional ``runs`` list is drawn as faint dots)."""
    plt = _pyplot()
    xs = [row[x] for row in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    ax1.plot(xs, [row["convergence_time_after_heal"] for row in rows], "o-", color="tab:purple")
    for row in rows:  # individual runs, when the rows are means
        runs = row.get("runs", [])
        ax1.plot([row[x]] * len(runs), [r["convergence_time_after_heal"] for r in runs], ".", color="tab:purple", alpha=0.4)
        ax2.plot([row[x]] * len(runs), [r["bytes"] / 1024 / 1024 for r in runs], ".", color="tab:gray", alpha=0.4)
    ax1.set_ylim(bottom=0)
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("convergence after heal (s)")
    ax1.grid(alpha=0.3)
    ax2.plot(xs, [row["bytes"] / 1024 / 1024 for row in rows], "s-", color="tab:gray")
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel("bytes sent (MB)")
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
