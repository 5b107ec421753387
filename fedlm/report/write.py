"""The report's files: a Markdown table, the same numbers as CSV, and accuracy curves as PNG."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from fedlm.io import atomic_path, write_text
from fedlm.report.study import PaperNumber, Study
from fedlm.report.summary import EPSILON, INFINITE, STATISTIC_KEYS, Row, points
from fedlm.tracking.runs import RunRecord

ACCURACY_KEYS = ("final", "best", "mean_last")  # fractions, shown in percent


def write_report(
    rows: Sequence[Row],
    study: Study,
    out_dir: str | Path,
    source: str = "",
    histories: bool = False,
) -> list[Path]:
    """report.md, report.csv, accuracy_vs_round.png and accuracy_vs_time.png in ``out_dir``; with
    privacy, accuracy_vs_epsilon.png; with ``histories``, every counted run's metrics per round
    in histories.csv."""
    out_dir = Path(out_dir)
    write_text(out_dir / "report.md", markdown(rows, study, source))
    records = csv_records(rows)
    with (
        atomic_path(out_dir / "report.csv") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.DictWriter(f, fieldnames=list(records[0]) if records else ["setting"])
        writer.writeheader()
        writer.writerows(records)
    files = [
        out_dir / "report.md",
        out_dir / "report.csv",
        *plot_accuracy(rows, study.metric, out_dir),
    ]
    if has_privacy(rows):
        files.append(plot_accuracy_vs_epsilon(rows, study.metric, out_dir))
    if histories:
        files.append(write_histories(rows, out_dir / "histories.csv"))
    for path in files:
        path.chmod(0o644)  # for others to read (atomic_path's temporary files are 0600)
    return files


def columns(rows: Sequence[Row], study: Study) -> list[tuple[str, str]]:
    """(statistic, header) of the table's columns; headers name the scale's window and target
    when all rows share a scale."""
    scales = {row.scale for row in rows if row.group.runs}
    scale = study.scale(scales.pop()) if len(scales) == 1 else None
    result = [("final", "final acc %"), ("best", "best acc %")]
    if study.statistic == "mean_last":
        if scale is not None and scale.last_rounds is not None:
            result.append(("mean_last", f"mean acc % last {scale.last_rounds} rounds"))
        elif scale is not None and scale.last_fraction is not None:
            result.append(("mean_last", f"mean acc % last {scale.last_fraction:.0%} of rounds"))
        else:
            result.append(("mean_last", "mean acc % last rounds"))
    target = scale.target_accuracy if scale is not None else None
    result.append(("rounds_to_target", f"rounds to {target:.0%}" if target else "rounds to target"))
    if has_privacy(rows):
        result.append(("epsilon", "epsilon"))
    return [*result, ("wall_minutes", "wall time min"), ("train_minutes", "training time min")]


def has_privacy(rows: Sequence[Row]) -> bool:
    return any(row.values.get("epsilon") for row in rows)


def table(rows: Sequence[Row], study: Study) -> list[str]:
    """The Markdown table's lines."""
    cols = columns(rows, study)
    header = ["setting", "runs", *[h for _, h in cols], "paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.group.label, str(len(row.group.runs)), *[cell(row, k) for k, _ in cols]]
        lines.append("| " + " | ".join([*cells, paper_cell(row.paper)]) + " |")
    return lines


def markdown(rows: Sequence[Row], study: Study, source: str = "") -> str:
    lines = [f"# {study.name}: report", ""]
    if source:
        lines += [source, ""]
    lines += [*table(rows, study), "", *notes(rows, study)]
    left = [(row.group.label, run, why) for row in rows for run, why in row.group.left_out]
    if left:
        lines += [
            "",
            "Runs not in the table:",
            "",
            "| setting | seed | run | why |",
            "|---|---|---|---|",
        ]
        for label, run, why in left:
            lines.append(f"| {label} | {run.setting('seed')} | {run.run_id} | {why} |")
    missing = [row.group for row in rows if row.group.missing_seeds]
    if missing:
        lines += [""] + [
            f"Missing: {g.label} has no finished run of seed {', '.join(g.missing_seeds)}."
            for g in missing
        ]
    lines += [
        "",
        "![accuracy against round](accuracy_vs_round.png)",
        "",
        "![accuracy against wall time](accuracy_vs_time.png)",
        "",
    ]
    if has_privacy(rows):
        lines += ["![accuracy against epsilon](accuracy_vs_epsilon.png)", ""]
    return "\n".join(lines)


def notes(rows: Sequence[Row], study: Study) -> list[str]:
    lines = [
        f"Each cell: mean ± standard deviation over the seeds (runs); accuracy: {study.metric} "
        "in percent; rounds to the target: over the runs that reached it (reached/runs)."
    ]
    for name in sorted({row.scale for row in rows if row.scale}):
        scale, parts = study.scale(name), []
        if study.statistic == "mean_last" and scale.last_rounds is not None:
            parts.append(f"mean over the evaluations in the last {scale.last_rounds} rounds")
        elif study.statistic == "mean_last" and scale.last_fraction is not None:
            parts.append(
                f"mean over the evaluations in the last {scale.last_fraction:.0%} of rounds"
            )
        if scale.target_accuracy is not None:
            parts.append(f"target accuracy {scale.target_accuracy:.0%}")
        if parts:
            lines.append(f"Scale {name}: " + ", ".join(parts) + ".")
    deltas = sorted({delta for row in rows for delta in deltas_of(row)})
    if deltas:
        shown = ", ".join(f"{d:.3g}" for d in deltas)
        lines.append(
            f"Epsilon: the privacy spent by the end of the run, at delta = {shown} (∞: no noise); "
            "the same for every seed of a setting."
        )
    if study.paper:
        what = f": {study.paper_statistic}" if study.paper_statistic else ""
        lines.append(f"Paper column: {study.paper}{what}.")
    numbers = {row.paper.label: row.paper for row in rows if row.paper}
    for number in sorted(numbers.values(), key=lambda n: n.label):
        flag = "" if number.confirmed else " (* not confirmed against the paper's text)"
        note = f" {number.note}" if number.note else ""
        lines.append(f"- {number.label}: {number}, {number.source}{flag}.{note}")
    return lines


def deltas_of(row: Row) -> set[float]:
    return {v for run in row.group.runs for _, v, _ in run.history.get("privacy/delta", [])}


def csv_records(rows: Sequence[Row]) -> list[dict[str, object]]:
    records = []
    for row in rows:
        record: dict[str, object] = {
            "setting": row.group.label,
            "scale": row.scale or "",
            "runs": len(row.group.runs),
        }
        for key in STATISTIC_KEYS:
            mean, std = row.mean_std(key)
            record[f"{key}_mean"] = "" if mean is None else mean
            record[f"{key}_std"] = "" if std is None else std
        record["reached_target"] = row.reached
        record["paper_value"] = "" if row.paper is None else row.paper.value
        record["paper_source"] = "" if row.paper is None else row.paper.source
        record["paper_confirmed"] = "" if row.paper is None else row.paper.confirmed
        record["left_out"] = len(row.group.left_out)
        record["missing_seeds"] = " ".join(row.group.missing_seeds)
        records.append(record)
    return records


def cell(row: Row, key: str) -> str:
    mean, std = row.mean_std(key)
    runs = len(row.group.runs)
    if key == "rounds_to_target" and runs and row.target is not None:
        if mean is None:
            return f"not reached (0/{runs})"
        return (
            f"{plus_minus(mean, std, '.1f' if std is not None else '.0f')} ({row.reached}/{runs})"
        )
    if mean is None:
        return "–"
    if key == "epsilon":
        return "∞" if math.isinf(mean) else f"{mean:.3g}"  # the same for every seed
    factor = 100.0 if key in ACCURACY_KEYS else 1.0
    return plus_minus(mean * factor, None if std is None else std * factor, ".1f")


def plus_minus(mean: float, std: float | None, spec: str) -> str:
    return f"{mean:{spec}}" if std is None else f"{mean:{spec}} ± {std:{spec}}"


def paper_cell(number: PaperNumber | None) -> str:
    if number is None:
        return "–"
    return str(number) + ("" if number.confirmed else " *")


# -- plots ------------------------------------------------------------------------------------


def curve(runs: Sequence[RunRecord], metric: str) -> tuple[list, list, list, list]:
    """Rounds, mean minutes since start, mean and standard deviation of ``metric`` over the runs,
    at the rounds that every run evaluated."""
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


def plot_accuracy(rows: Sequence[Row], metric: str, out_dir: str | Path) -> list[Path]:
    """Accuracy against round and against wall time: one line per setting, the mean over seeds,
    shaded one standard deviation either side."""
    # A bare Figure (no pyplot): no display needed, and no global backend switched.
    from matplotlib.figure import Figure

    written = []
    for name, x_label, x_index in (
        ("accuracy_vs_round.png", "round", 0),
        ("accuracy_vs_time.png", "wall time (minutes since the run started)", 1),
    ):
        fig = Figure(figsize=(7, 4.5), dpi=100)
        ax = fig.subplots()
        for row in rows:
            data = curve(row.group.runs, metric)
            if not data[0]:
                continue
            mean = [100.0 * v for v in data[2]]
            std = [100.0 * v for v in data[3]]
            (line,) = ax.plot(data[x_index], mean, marker="o", markersize=2, label=row.group.label)
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(data[x_index], low, high, color=line.get_color(), alpha=0.15)
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
        fig.tight_layout()
        with atomic_path(Path(out_dir) / name, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        written.append(Path(out_dir) / name)
    return written


def plot_accuracy_vs_epsilon(rows: Sequence[Row], metric: str, out_dir: str | Path) -> Path:
    """Accuracy against the epsilon spent so far, at every evaluated round: one line per setting
    (the mean over seeds); settings without noise (epsilon infinite) as a dashed level at their
    final accuracy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for row in rows:
        rounds, _, means, _ = curve(row.group.runs, metric)
        spent = {step: value for run in row.group.runs for step, value, _ in points(run, EPSILON)}
        if not rounds or not spent:
            continue
        if all(value >= INFINITE for value in spent.values()):
            ax.axhline(
                100.0 * means[-1], linestyle="--", linewidth=1, label=f"{row.group.label} (ε = ∞)"
            )
            continue
        kept = [(r, m) for r, m in zip(rounds, means, strict=True) if r in spent]
        if kept:
            epsilons = [spent[r] for r, _ in kept]
            accuracies = [100.0 * m for _, m in kept]
            ax.plot(epsilons, accuracies, marker="o", markersize=3, label=row.group.label)
    ax.set_xscale("log")
    ax.set_xlabel("epsilon spent (log scale)")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(out_dir) / "accuracy_vs_epsilon.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_histories(rows: Sequence[Row], path: Path) -> Path:
    """Every counted run's metrics, one line per (run, metric, round): setting, seed, run id."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "seed", "run_id", "metric", "round", "value"])
        for row in rows:
            for run in row.group.runs:
                for metric in sorted(run.history):
                    for step, value, _ in run.history[metric]:
                        shown = "inf" if value >= INFINITE else repr(value)
                        writer.writerow(
                            [row.group.label, run.setting("seed"), run.run_id, metric, step, shown]
                        )
    return path
