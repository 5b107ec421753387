"""What a report says, as a list of blocks (headings, paragraphs, tables, lists, images) that
:mod:`fedlm.report.render` writes as Markdown and as HTML, so both always say the same.

The first metric's table carries the runs' times and the paper's numbers; every further metric
(``fedlm-report --metric``) gets a table of its own. A paper number stands in the "paper" column
only beside runs that used every setting the study's ``paper.yaml`` names; beside other runs it
stands in a column marked "not comparable", and the report opens with a one-line caveat.

Runs with a DP aggregator (``privacy/epsilon`` logged) add an epsilon column to the first table
and a plot of each metric against the epsilon spent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedlm.report.study import PaperNumber, Study
from fedlm.report.summary import DELTA, Row, higher_is_better, sort_key


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Items:
    items: list[str]


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


Block = Heading | Paragraph | Table | Items | Image


def metrics_of(rows: Sequence[Row], study: Study) -> list[str]:
    return list(rows[0].metrics) if rows else [study.metric]


def is_percent(metric: str) -> bool:
    return higher_is_better(metric)


def short(metric: str) -> str:
    """How a metric is named in headers: ``acc`` for eval/accuracy, else its key."""
    return "acc" if metric == "eval/accuracy" else metric


def plot_stem(metric: str) -> str:
    stem = metric[len("eval/") :] if metric.startswith("eval/") else metric
    return stem.replace("/", "_")


def plot_files(metric: str) -> tuple[str, str]:
    """The two plots of ``metric``: against round and against wall time."""
    return f"{plot_stem(metric)}_vs_round.png", f"{plot_stem(metric)}_vs_time.png"


def epsilon_plot_file(metric: str) -> str:
    """The plot of ``metric`` against the epsilon spent (runs with a DP aggregator)."""
    return f"{plot_stem(metric)}_vs_epsilon.png"


def has_privacy(rows: Sequence[Row]) -> bool:
    """Whether any counted run logged the privacy it spent (a DP aggregator)."""
    return any(row.values.get("epsilon") for row in rows)


def deltas_of(row: Row) -> set[float]:
    return {v for run in row.group.runs for _, v, _ in run.history.get(DELTA, [])}


# -- the tables -------------------------------------------------------------------------------


def window_text(rows: Sequence[Row], study: Study) -> str:
    scales = {row.scale for row in rows if row.group.runs}
    scale = study.scale(scales.pop()) if len(scales) == 1 else None
    if scale is not None and scale.last_rounds is not None:
        return f"last {scale.last_rounds} rounds"
    if scale is not None and scale.last_fraction is not None:
        return f"last {scale.last_fraction:.0%} of rounds"
    return "last rounds"


def shared_target(rows: Sequence[Row]) -> float | None:
    targets = {row.target for row in rows if row.group.runs}
    return targets.pop() if len(targets) == 1 else None


def metric_columns(rows: Sequence[Row], study: Study, metric: str) -> list[tuple[str, str]]:
    """(statistic, header) of ``metric``'s columns."""
    unit = " %" if is_percent(metric) else ""
    best = "best" if metric == "eval/accuracy" else ("highest" if is_percent(metric) else "lowest")
    name = short(metric)
    columns = [("final", f"final {name}{unit}"), ("best", f"{best} {name}{unit}")]
    if study.statistic == "mean_last":
        columns.append(("mean_last", f"mean {name}{unit} {window_text(rows, study)}"))
    return columns


def paper_columns(rows: Sequence[Row]) -> tuple[bool, list[str]]:
    """Whether any row is comparable with the paper (a "paper" column), and the settings that
    rows beside a paper number do not share (a "paper (not comparable: ...)" column)."""
    comparable = any(row.comparable for row in rows)
    keys: list[str] = []
    for row in rows:
        if row.paper is not None:
            keys += [d.key for d in row.differences if d.key not in keys]
    return comparable, keys


def main_table(rows: Sequence[Row], study: Study) -> Table:
    """The first metric's statistics, rounds to the target, times and the paper's numbers."""
    metric = metrics_of(rows, study)[0]
    columns = metric_columns(rows, study, metric)
    header = ["setting", "runs", *(h for _, h in columns)]
    target = shared_target(rows)
    show_target = metric == study.metric and any(row.target is not None for row in rows)
    if show_target:
        header.append(f"rounds to {target:.0%}" if target else "rounds to target")
    privacy = has_privacy(rows)
    if privacy:
        header.append("epsilon")
    header += ["wall time min", "training time min"]
    with_paper = metric == study.metric and any(row.paper is not None for row in rows)
    comparable, differing = paper_columns(rows) if with_paper else (False, [])
    if comparable:
        header.append("paper")
    if differing:
        header.append(f"paper (not comparable: {', '.join(differing)})")
    lines = []
    for row in rows:
        cells = [row.group.label, str(len(row.group.runs))]
        cells += [cell(row, key, metric) for key, _ in columns]
        if show_target:
            cells.append(target_cell(row))
        if privacy:
            cells.append(epsilon_cell(row))
        cells += [cell(row, "wall_minutes"), cell(row, "train_minutes")]
        if comparable:
            cells.append(paper_cell(row.paper) if row.comparable else "–")
        if differing:
            shown = row.paper is not None and not row.comparable
            cells.append(paper_cell(row.paper) if shown else "–")
        lines.append(cells)
    return Table(header, lines)


def metric_table(rows: Sequence[Row], study: Study, metric: str) -> Table:
    columns = metric_columns(rows, study, metric)
    header = ["setting", "runs", *(h for _, h in columns)]
    lines = [
        [row.group.label, str(len(row.group.runs)), *(cell(row, k, metric) for k, _ in columns)]
        for row in rows
    ]
    return Table(header, lines)


def table(rows: Sequence[Row], study: Study) -> list[str]:
    """The first table's Markdown lines."""
    from fedlm.report.render import markdown_table

    return markdown_table(main_table(rows, study))


def cell(row: Row, key: str, metric: str | None = None) -> str:
    mean, std = row.mean_std(key, metric)
    if mean is None:
        return "–"
    if metric is not None and is_percent(metric):
        return plus_minus(100.0 * mean, None if std is None else 100.0 * std, ".1f")
    spec = ".3f" if metric is not None else ".1f"
    return plus_minus(mean, std, spec)


def epsilon_cell(row: Row) -> str:
    """The privacy spent by the end of the runs: the same for every seed of a setting."""
    mean, _ = row.mean_std("epsilon")
    if mean is None:
        return "–"
    return "∞" if math.isinf(mean) else f"{mean:.3g}"


def target_cell(row: Row) -> str:
    runs = len(row.group.runs)
    if not runs or row.target is None:
        return "–"
    mean, std = row.mean_std("rounds_to_target")
    if mean is None:
        return f"not reached (0/{runs})"
    return f"{plus_minus(mean, std, '.1f' if std is not None else '.0f')} ({row.reached}/{runs})"


def plus_minus(mean: float, std: float | None, spec: str) -> str:
    return f"{mean:{spec}}" if std is None else f"{mean:{spec}} ± {std:{spec}}"


def paper_cell(number: PaperNumber | None) -> str:
    if number is None:
        return "–"
    return str(number) + ("" if number.confirmed else " *")


# -- the words around them --------------------------------------------------------------------


def caveat(rows: Sequence[Row], study: Study) -> str | None:
    """One line saying that the runs beside a paper number did not use the paper's settings."""
    if metrics_of(rows, study)[0] != study.metric:
        return None
    apart = [row for row in rows if row.paper is not None and not row.comparable]
    if not apart:
        return None
    merged: dict[str, tuple[set[str], set[str]]] = {}
    for row in apart:
        for d in row.differences:
            runs, paper = merged.setdefault(d.key, (set(), set()))
            runs.update(d.runs)
            paper.add(d.paper)
    parts = [
        f"{key} {'/'.join(sorted(runs, key=sort_key))} (paper {'/'.join(sorted(paper))})"
        for key, (runs, paper) in merged.items()
    ]
    which = "These runs" if len(apart) == len(rows) else f"{len(apart)} of {len(rows)} settings"
    return (
        f"**Not comparable with the paper.** {which} did not use the paper's settings: "
        + "; ".join(parts)
        + ". The paper's numbers stand apart, for reference only."
    )


def notes(rows: Sequence[Row], study: Study) -> list[str]:
    metrics = metrics_of(rows, study)
    percent = [m for m in metrics if is_percent(m)]
    lines = [
        "Each cell: mean ± standard deviation over the seeds (runs)"
        + (f"; {', '.join(percent)} in percent" if percent else "")
        + "; best: the highest accuracy, the lowest loss, perplexity or bits per character"
        + "; rounds to the target: over the runs that reached it (reached/runs)."
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
            parts.append(f"target accuracy {scale.target_accuracy:.0%} ({study.metric})")
        if parts:
            lines.append(f"Scale {name}: " + ", ".join(parts) + ".")
    deltas = sorted({delta for row in rows for delta in deltas_of(row)})
    if deltas:
        shown = ", ".join(f"{d:.3g}" for d in deltas)
        lines.append(
            f"Epsilon: the privacy spent by the end of the run, at delta = {shown} (∞: no noise); "
            "the same for every seed of a setting."
        )
    if study.paper and any(row.paper for row in rows) and metrics[0] == study.metric:
        what = f": {study.paper_statistic}" if study.paper_statistic else ""
        lines.append(f"Paper: {study.paper}{what}.")
    return lines


def paper_items(rows: Sequence[Row], study: Study) -> list[str]:
    if metrics_of(rows, study)[0] != study.metric:
        return []
    numbers = {row.paper.label: row.paper for row in rows if row.paper}
    items = []
    for number in sorted(numbers.values(), key=lambda n: n.label):
        flag = "" if number.confirmed else " (* not confirmed against the paper's text)"
        note = f" {number.note}" if number.note else ""
        items.append(f"{number.label}: {number}, {number.source}{flag}.{note}")
    for row in rows:
        if row.paper is not None and row.differences:
            items.append(
                f"{row.group.label} beside {row.paper.label}: not comparable, "
                + ", ".join(str(d) for d in row.differences)
                + "."
            )
    return items


def left_out_table(rows: Sequence[Row]) -> Table | None:
    left = [(row.group.label, run, why) for row in rows for run, why in row.group.left_out]
    if not left:
        return None
    lines = [[label, str(run.setting("seed")), run.run_id, why] for label, run, why in left]
    return Table(["setting", "seed", "run", "why"], lines)


def blocks(rows: Sequence[Row], study: Study, source: str = "") -> list[Block]:
    """The whole report."""
    metrics = metrics_of(rows, study)
    out: list[Block] = [Heading(f"{study.name}: report")]
    warning = caveat(rows, study)
    if warning:
        out.append(Paragraph(warning))
    if source:
        out.append(Paragraph(source))
    out.append(main_table(rows, study))
    out += [Paragraph(line) for line in notes(rows, study)]
    items = paper_items(rows, study)
    if items:
        out.append(Items(items))
    for metric in metrics[1:]:
        out += [Heading(metric, 2), metric_table(rows, study, metric)]
    left = left_out_table(rows)
    if left is not None:
        out += [Paragraph("Runs not in the table:"), left]
    missing = [row.group for row in rows if row.group.missing_seeds]
    out += [
        Paragraph(f"Missing: {g.label} has no finished run of seed {', '.join(g.missing_seeds)}.")
        for g in missing
    ]
    privacy = has_privacy(rows)
    for metric in metrics:
        by_round, by_time = plot_files(metric)
        out += [
            Image(by_round, f"{metric} against round"),
            Image(by_time, f"{metric} against wall time"),
        ]
        if privacy:
            out.append(Image(epsilon_plot_file(metric), f"{metric} against epsilon"))
    out.append(
        Paragraph(
            "The runs and their per-round metrics behind every number: `runs.csv`, "
            "`histories.csv` (`fedlm-report --runs-from FOLDER` makes this report from them)."
        )
    )
    return out
