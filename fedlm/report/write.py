"""The report's files: report.md and report.html (the same text; the page holds its plots), the
numbers as report.csv, the plots as PNG (with a DP aggregator, against epsilon too), and the runs
behind them as runs.csv and histories.csv."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from fedlm.io import atomic_path, write_text
from fedlm.report.document import blocks, has_noise
from fedlm.report.histories import write_runs
from fedlm.report.notes import has_privacy, is_percent, metrics_of
from fedlm.report.plots import plot_metric, plot_metric_vs_epsilon, plot_metric_vs_noise
from fedlm.report.ranking import ranking
from fedlm.report.render import to_html, to_markdown
from fedlm.report.run_statistics import METRIC_STATISTICS, RUN_KEYS
from fedlm.report.study import Study
from fedlm.report.summary import Row
from fedlm.tracking.runs import RunRecord


def paper_line(study: Study, metric: str) -> bool:
    """Whether the study's paper numbers are levels of ``metric`` in its plots' units: the
    study's own metric, a percentage, judged by its final value or its mean over the last
    rounds (rounds to a target are no level)."""
    return metric == study.metric and is_percent(metric) and study.statistic != "first_at_target"


def write_report(
    rows: Sequence[Row],
    study: Study,
    out_dir: str | Path,
    source: str = "",
    runs: Sequence[RunRecord] | None = None,
) -> list[Path]:
    """Write the report to ``out_dir``; return the files written.

    ``runs``: every run read, counted or not (default: the rows' counted and left-out runs), for
    runs.csv and histories.csv.
    """
    out_dir = Path(out_dir)
    plots = []
    for metric in metrics_of(rows, study):
        plots += plot_metric(rows, metric, out_dir, paper_line(study, metric))
        if has_privacy(rows):
            plots.append(plot_metric_vs_epsilon(rows, metric, out_dir))
        if has_noise(rows):
            plots.append(plot_metric_vs_noise(rows, metric, out_dir))
    document = blocks(rows, study, source)
    write_text(out_dir / "report.md", to_markdown(document))
    write_text(out_dir / "report.html", to_html(document, out_dir))
    records = csv_records(rows, study)
    with (
        atomic_path(out_dir / "report.csv") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.DictWriter(f, fieldnames=list(records[0]) if records else ["setting"])
        writer.writeheader()
        writer.writerows(records)
    roles = {}
    for row in rows:
        roles.update({run.run_id: (row.group.label, "yes") for run in row.group.runs})
        roles.update({run.run_id: (row.group.label, why) for run, why in row.group.left_out})
    if runs is None:
        runs = [r for row in rows for r in (*row.group.runs, *(r for r, _ in row.group.left_out))]
    files = [
        out_dir / "report.md",
        out_dir / "report.html",
        out_dir / "report.csv",
        *write_runs(runs, out_dir, roles),
        *plots,
    ]
    for path in files:
        path.chmod(0o644)  # for others to read (atomic_path's temporary files are 0600)
    return files


def markdown(rows: Sequence[Row], study: Study, source: str = "") -> str:
    return to_markdown(blocks(rows, study, source))


def csv_records(rows: Sequence[Row], study: Study) -> list[dict[str, object]]:
    records = []
    # The ranks beside the paper's (fedlm.report.ranking): empty for a row not ranked.
    ranked = {id(p.row): p for p in ranking(rows, study)}
    for row in rows:
        record: dict[str, object] = {
            "setting": row.group.label,
            "scale": row.scale or "",
            "runs": len(row.group.runs),
        }
        for metric in row.metrics:
            for key in METRIC_STATISTICS:
                mean, std = row.mean_std(key, metric)
                record[f"{metric} {key}_mean"] = "" if mean is None else mean
                record[f"{metric} {key}_std"] = "" if std is None else std
        for key in RUN_KEYS:
            mean, std = row.mean_std(key)
            record[f"{key}_mean"] = "" if mean is None else mean
            record[f"{key}_std"] = "" if std is None else std
        record["reached_target"] = row.reached
        record["stays_at_target"] = row.stays
        record["paper_value"] = "" if row.paper is None else row.paper.value
        record["paper_comparable"] = "" if row.paper is None else row.comparable
        record["paper_differences"] = "; ".join(str(d) for d in row.differences)
        record["paper_source"] = "" if row.paper is None else row.paper.source
        record["paper_confirmed"] = "" if row.paper is None else row.paper.confirmed
        placing = ranked.get(id(row))
        record["rank"] = "" if placing is None or placing.rank is None else placing.rank
        record["paper_rank"] = "" if placing is None else placing.paper_rank
        record["left_out"] = len(row.group.left_out)
        record["missing_seeds"] = " ".join(row.group.missing_seeds)
        records.append(record)
    return records
