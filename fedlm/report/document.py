"""What a report says, as a list of blocks (headings, paragraphs, tables, lists, images) that
:mod:`fedlm.report.render` writes as Markdown and as HTML, so both always say the same.

The first metric's table carries the runs' times and the paper's numbers; every further metric
(``fedlm-report --metric``) gets a table of its own. A paper number stands in the "paper" column
only beside runs that used every setting the study's ``paper.yaml`` names; beside other runs it
stands in a column marked "not comparable", and the report opens with a one-line caveat.

Runs with a DP aggregator (``privacy/epsilon`` logged) add an epsilon column to the first table
and a plot of each metric against the epsilon spent. Runs counted before they finished
(``--include-unfinished``) are marked in the runs column with the last round they trained. The
words around the tables (the first line, the caveat, the notes, the paper's numbers and the
differences from the paper) come from :mod:`fedlm.report.notes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedlm.report import times
from fedlm.report.notes import (
    caveat,
    counted_runs,
    differences,
    has_privacy,
    interim_text,
    interim_title,
    is_percent,
    mean_last_header,
    metrics_of,
    notes,
    paper_items,
    paper_shown,
    progress,
    short,
)
from fedlm.report.ranking import order, pairs_in_order, ranking, statistic_of
from fedlm.report.run_statistics import (
    ADD_OR_REMOVE,
    METRIC_STATISTICS,
    REPLACE_ONE,
    adjacency,
    finished,
)
from fedlm.report.study import PaperNumber, Study
from fedlm.report.summary import Row


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


def plot_stem(metric: str) -> str:
    stem = metric[len("eval/") :] if metric.startswith("eval/") else metric
    return stem.replace("/", "_")


def plot_files(metric: str) -> tuple[str, str]:
    """The two plots of ``metric``: against round and against the runs' time (running time)."""
    return f"{plot_stem(metric)}_vs_round.png", f"{plot_stem(metric)}_vs_time.png"


def epsilon_plot_file(metric: str) -> str:
    """The plot of ``metric`` against the epsilon spent (runs with a DP aggregator)."""
    return f"{plot_stem(metric)}_vs_epsilon.png"


def noise_plot_file(metric: str) -> str:
    """The plot of ``metric`` against the noise on the mean (runs with a DP aggregator)."""
    return f"{plot_stem(metric)}_vs_noise.png"


def has_noise(rows: Sequence[Row]) -> bool:
    """Whether a row has a noise on the mean (a DP aggregator with noise)."""
    return any(row.mean_std("noise_on_mean")[0] for row in rows)


# -- the tables -------------------------------------------------------------------------------


def runs_cell(row: Row, metric: str) -> str:
    """How many runs the row counts, the unfinished ones marked with the last round they trained."""
    runs = row.group.runs
    open_runs = [run for run in runs if not finished(run)]
    if not open_runs:
        return str(len(runs))
    how_many = "" if len(runs) == 1 else f"{len(open_runs)} "
    rounds = "round" if len(open_runs) == 1 else "rounds"
    shown = ", ".join(progress(run, metric) for run in open_runs)
    return f"{len(runs)} ({how_many}unfinished: last {rounds} {shown})"


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
        columns += [
            ("mean_last", mean_last_header(rows, study, metric)),
            ("window_std", f"std {name}{unit} within window"),
            ("window_evaluations", "evaluations in window"),
        ]
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
        shown = f"{target:.0%}" if target else "target"
        header += [f"first round ≥ {shown}", f"stays ≥ {shown} from round"]
    kinds = epsilon_kinds(rows) if has_privacy(rows) else []
    header += [f"epsilon ({kind})" for kind in kinds]
    noise = has_noise(rows)
    if noise:
        header.append("noise on the mean")
    header += ["wall time min", "training time min", "running time min"]
    comparable, differing = paper_columns(rows) if paper_shown(rows, study) else (False, [])
    if comparable:
        header.append("paper")
    if differing:
        header.append(f"paper (not comparable: {', '.join(differing)})")
    lines = []
    for row in rows:
        cells = [row.group.label, runs_cell(row, metric)]
        cells += [cell(row, key, metric) for key, _ in columns]
        if show_target:
            cells += [target_cell(row, "rounds_to_target"), target_cell(row, "rounds_to_stay")]
        cells += [epsilon_cell(row) if row_adjacency(row) == kind else "–" for kind in kinds]
        if noise:
            mean, _ = row.mean_std("noise_on_mean")
            cells.append("–" if mean is None else f"{mean:.3g}")
        cells += [cell(row, k) for k in ("wall_minutes", "train_minutes", "running_minutes")]
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
        [row.group.label, runs_cell(row, metric), *(cell(row, k, metric) for k, _ in columns)]
        for row in rows
    ]
    return Table(header, lines)


def cell(row: Row, key: str, metric: str | None = None) -> str:
    if key == "window_evaluations":
        return evaluations_cell(row, metric)
    mean, std = row.mean_std(key, metric)
    if mean is None:
        return "–"
    if key == "window_std":
        # Each run's spread within its window; over several runs their mean, no "±" of spreads.
        scaled = 100.0 * mean if metric is not None and is_percent(metric) else mean
        return f"{scaled:.2f}" + partial(row, key, metric)
    if metric is not None and is_percent(metric):
        text = plus_minus(100.0 * mean, None if std is None else 100.0 * std, ".1f")
    else:
        text = plus_minus(mean, std, ".3f" if metric is not None else ".1f")
    return text + partial(row, key, metric)


def partial(row: Row, key: str, metric: str | None) -> str:
    """The count " (2 of 3 runs)" where unfinished runs have no value yet of a statistic."""
    runs, values = len(row.group.runs), len(row.values_of(key, metric))
    if key not in METRIC_STATISTICS or values == runs or all(map(finished, row.group.runs)):
        return ""
    return f" ({values} of {runs} runs)"


def row_adjacency(row: Row) -> str:
    """What the row's epsilon is for (its runs share the sampler: it is part of the setting)."""
    return adjacency(row.group.runs[0]) if row.group.runs else REPLACE_ONE


def epsilon_kinds(rows: Sequence[Row]) -> list[str]:
    """The epsilon columns the rows need: replace-one (fixed-size sampling) and add-or-remove
    (Poisson sampling), each where some row accounts its privacy that way."""
    found = {row_adjacency(row) for row in rows if row.mean_std("epsilon")[0] is not None}
    return [kind for kind in (REPLACE_ONE, ADD_OR_REMOVE) if kind in found]


def epsilon_cell(row: Row) -> str:
    """The privacy spent by the end of the runs: the same for every seed of a setting."""
    mean, _ = row.mean_std("epsilon")
    if mean is None:
        return "–"
    return "∞" if math.isinf(mean) else f"{mean:.3g}"


def evaluations_cell(row: Row, metric: str | None) -> str:
    """How many evaluations each run's mean over the window averages: one number when they all
    average as many, else each run's."""
    counts = [int(n) for n in row.values_of("window_evaluations", metric)]
    if not counts:
        return "–"
    shown = str(counts[0]) if len(set(counts)) == 1 else " / ".join(map(str, counts))
    return shown + partial(row, "window_evaluations", metric)


def target_cell(row: Row, key: str = "rounds_to_target") -> str:
    """Rounds to the target (``rounds_to_target``: the first round at it; ``rounds_to_stay``:
    the round from which it stays at or above it), over the runs that got there."""
    runs = len(row.group.runs)
    if not runs or row.target is None:
        return "–"
    mean, std = row.mean_std(key)
    got = row.reached if key == "rounds_to_target" else row.stays
    if mean is None:
        return f"not reached (0/{runs})"
    return f"{plus_minus(mean, std, '.1f' if std is not None else '.0f')} ({got}/{runs})"


def plus_minus(mean: float, std: float | None, spec: str) -> str:
    return f"{mean:{spec}}" if std is None else f"{mean:{spec}} ± {std:{spec}}"


def paper_cell(number: PaperNumber | None) -> str:
    if number is None:
        return "–"
    return str(number) + ("" if number.confirmed else " *")


def ranking_blocks(rows: Sequence[Row], study: Study) -> list[Block]:
    """The methods ranked by the study's statistic beside the paper's ranking (two or more
    methods comparable with the paper's numbers; :mod:`fedlm.report.ranking`)."""
    placings = ranking(rows, study) if paper_shown(rows, study) else []
    if len(placings) < 2:
        return []
    key, _ = statistic_of(study)
    percent = key != "rounds_to_target" and is_percent(study.metric)
    if key == "mean_last":
        what = mean_last_header(rows, study, study.metric)
    elif key == "final":
        what = f"final {short(study.metric)}{' %' if percent else ''}"
    else:
        what = "first round at the target"

    def shown(value: float | None) -> str:
        if value is None:
            return "–"
        if percent:
            return f"{100.0 * value:.2f}"
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"

    lines = [
        [
            p.paper.label,
            p.row.group.label,
            shown(p.value),
            "–" if p.rank is None else str(p.rank),
            paper_cell(p.paper),
            str(p.paper_rank),
        ]
        for p in placings
    ]
    same, compared = pairs_in_order(placings)
    text = (
        f"By fedlm's {what}: {order(placings) or 'none ranked yet'}; by the paper's: "
        f"{order(placings, paper=True)}. "
        + (f"{same} of {compared} pairs of methods in the paper's order. " if compared else "")
        + "Rank 1 is the best; a method without a value yet has none."
    )
    if any(not p.paper.confirmed for p in placings):
        text += " * the paper's value not confirmed against its text."
    header = ["method", "setting", f"fedlm {what}", "fedlm rank", "paper", "paper rank"]
    return [Heading("Ranking against the paper", 2), Table(header, lines), Paragraph(text)]


def left_out_table(rows: Sequence[Row]) -> Table | None:
    left = [(row.group.label, run, why) for row in rows for run, why in row.group.left_out]
    if not left:
        return None
    lines = [[label, str(run.setting("seed")), run.run_id, why] for label, run, why in left]
    return Table(["setting", "seed", "run", "why"], lines)


def blocks(rows: Sequence[Row], study: Study, source: str = "") -> list[Block]:
    """The whole report."""
    metrics = metrics_of(rows, study)
    out: list[Block] = [Heading(interim_title(rows, study))]
    interim = interim_text(rows, study)
    if interim:
        out.append(Paragraph(interim))
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
    out += ranking_blocks(rows, study)
    apart = differences(rows, study)
    if apart:
        out += [Heading("Differences from the paper", 2), Items(apart)]
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
    clock = times.axis_name(counted_runs(rows))
    for metric in metrics:
        by_round, by_time = plot_files(metric)
        out += [
            Image(by_round, f"{metric} against round"),
            Image(by_time, f"{metric} against {clock}"),
        ]
        if privacy:
            out.append(Image(epsilon_plot_file(metric), f"{metric} against epsilon"))
        if has_noise(rows):
            out.append(Image(noise_plot_file(metric), f"{metric} against the noise on the mean"))
    out.append(
        Paragraph(
            "The runs and their per-round metrics behind every number: `runs.csv`, "
            "`histories.csv` (`fedlm-report --runs-from FOLDER` makes this report from them)."
        )
    )
    return out
