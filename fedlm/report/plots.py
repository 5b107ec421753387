"""A study's curves: one metric against round and against the runs' running time (minutes of
training and evaluation, interruptions excluded: :mod:`fedlm.report.times`), one line per setting
(the mean over seeds, shaded one standard deviation either side), and, for runs with a DP
aggregator, against the epsilon spent, as PNG files. Where a setting is comparable with the paper
and the paper's number is a level of the plotted metric (its accuracy, not rounds to a target),
the number is drawn as a dashed line in the setting's colour."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from fedlm.io import atomic_path
from fedlm.report import times
from fedlm.report.document import epsilon_plot_file, noise_plot_file, plot_files
from fedlm.report.notes import counted_runs, is_percent
from fedlm.report.run_statistics import EPSILON, INFINITE, points
from fedlm.report.summary import Row
from fedlm.tracking.runs import RunRecord


def curve(runs: Sequence[RunRecord], metric: str) -> tuple[list, list, list, list]:
    """Rounds, mean minutes of the runs' time (running time), mean and standard deviation of
    ``metric`` over the runs, at the rounds that every run evaluated."""
    series = [{step: (value, t / 60.0) for step, value, t in points(run, metric)} for run in runs]
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    rounds, minutes, means, stds = [], [], [], []
    for step in common:
        values = [s[step][0] for s in series]
        rounds.append(step)
        minutes.append(statistics.fmean(s[step][1] for s in series))
        means.append(statistics.fmean(values))
        stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return rounds, minutes, means, stds


def figure(rows: Sequence[Row], metric: str, x_axis: str, paper: bool = False):
    """``metric`` against ``x_axis`` ("round": whole rounds on the axis, or "time"); ``paper``:
    the paper's number of each comparable row as a horizontal line (in ``metric``'s percent)."""
    # A bare Figure (no pyplot): no display needed, and no global backend switched.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    factor, unit = (100.0, " (%)") if is_percent(metric) else (1.0, "")
    x_index = 0 if x_axis == "round" else 1
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for row in rows:
        data = curve(row.group.runs, metric)
        if not data[0]:
            continue
        mean = [factor * v for v in data[2]]
        std = [factor * v for v in data[3]]
        (line,) = ax.plot(data[x_index], mean, marker="o", markersize=2, label=row.group.label)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(data[x_index], low, high, color=line.get_color(), alpha=0.15)
        if paper and row.paper is not None and row.comparable:
            ax.axhline(
                row.paper.value,
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
                label=f"paper: {row.paper.label} {row.paper}",
            )
    if x_axis == "round":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no round 0.5
        ax.set_xlabel("round")
    else:
        ax.set_xlabel(times.axis_label(counted_runs(rows)))
    ax.set_ylabel(metric + unit)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_metric(
    rows: Sequence[Row], metric: str, out_dir: str | Path, paper: bool = False
) -> list[Path]:
    """``metric`` against round and against the runs' time, as two PNG files in ``out_dir``
    (``paper``: with the paper's numbers, see :func:`figure`)."""
    written = []
    for name, x_axis in zip(plot_files(metric), ("round", "time"), strict=True):
        fig = figure(rows, metric, x_axis, paper)
        with atomic_path(Path(out_dir) / name, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        written.append(Path(out_dir) / name)
    return written


def plot_metric_vs_epsilon(rows: Sequence[Row], metric: str, out_dir: str | Path) -> Path:
    """``metric`` against the epsilon spent so far, at every evaluated round: one line per setting
    (the mean over seeds); settings without noise (epsilon infinite) as a dashed level at their
    final value."""
    from matplotlib.figure import Figure

    factor, unit = (100.0, " (%)") if is_percent(metric) else (1.0, "")
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for row in rows:
        rounds, _, means, _ = curve(row.group.runs, metric)
        spent = {step: value for run in row.group.runs for step, value, _ in points(run, EPSILON)}
        if not rounds or not spent:
            continue
        if all(value >= INFINITE for value in spent.values()):
            ax.axhline(
                factor * means[-1], linestyle="--", linewidth=1, label=f"{row.group.label} (ε = ∞)"
            )
            continue
        kept = [(r, m) for r, m in zip(rounds, means, strict=True) if r in spent]
        if kept:
            epsilons = [spent[r] for r, _ in kept]
            values = [factor * m for _, m in kept]
            ax.plot(epsilons, values, marker="o", markersize=3, label=row.group.label)
    ax.set_xscale("log")
    ax.set_xlabel("epsilon spent (log scale)")
    ax.set_ylabel(metric + unit)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(out_dir) / epsilon_plot_file(metric)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_metric_vs_noise(rows: Sequence[Row], metric: str, out_dir: str | Path) -> Path:
    """``metric``'s statistic (the mean over the study's window, over seeds) of each setting with
    noise against its noise on the mean (noise multiplier x clip / clients per round, log scale);
    settings without noise (the baselines) as dashed levels."""
    from matplotlib.figure import Figure

    factor, unit = (100.0, " (%)") if is_percent(metric) else (1.0, "")
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for row in rows:
        value, _ = row.mean_std("mean_last", metric)
        noise, _ = row.mean_std("noise_on_mean")
        if value is None:
            continue
        if noise:
            ax.plot([noise], [factor * value], marker="o", linestyle="", label=row.group.label)
            ax.annotate(row.group.label, (noise, factor * value), fontsize="small")
        else:
            ax.axhline(factor * value, linestyle="--", linewidth=1, label=f"{row.group.label}")
    ax.set_xscale("log")
    ax.set_xlabel("noise on the mean: noise multiplier x clip / clients per round (log scale)")
    ax.set_ylabel(f"{metric}{unit}, mean over the study's window")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(out_dir) / noise_plot_file(metric)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
