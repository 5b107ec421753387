"""The words of a report around its tables: the first line (interim or not), the caveat, the
notes under the first table, the paper's numbers and the differences from the paper, as plain
strings that :mod:`fedlm.report.document` puts into blocks.

The notes say what each time column measures (:mod:`fedlm.report.times`) and which runs were
resumed (their wall time spans their interruptions), and, for a mean over the last rounds, which
evaluations it averages, read from the runs' histories: "the mean over the 10 evaluations in rounds
1101–1200 (every 10 rounds)". Where the paper's numbers are shown, the study's ``differences``
follow them. A report that counts unfinished runs (``--include-unfinished``) says so in its first
line, with how far each has got.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedlm.report import times
from fedlm.report.run_statistics import (
    DELTA,
    Window,
    finished,
    higher_is_better,
    last_round,
    rounds_of,
    stopped_at,
)
from fedlm.report.study import Study
from fedlm.report.summary import Row, sort_key
from fedlm.tracking.runs import RESUMED_FROM_TAG, RunRecord
from fedlm.tracking.summary import RECENT, STOPPED_FACTOR


def metrics_of(rows: Sequence[Row], study: Study) -> list[str]:
    return list(rows[0].metrics) if rows else [study.metric]


def is_percent(metric: str) -> bool:
    return higher_is_better(metric)


def short(metric: str) -> str:
    """How a metric is named in headers: ``acc`` for eval/accuracy, else its key."""
    return "acc" if metric == "eval/accuracy" else metric


def has_privacy(rows: Sequence[Row]) -> bool:
    """Whether any counted run logged the privacy it spent (a DP aggregator)."""
    return any(row.values.get("epsilon") for row in rows)


def deltas_of(row: Row) -> set[float]:
    return {v for run in row.group.runs for _, v, _ in run.history.get(DELTA, [])}


def counted_runs(rows: Sequence[Row]) -> list[RunRecord]:
    return [run for row in rows for run in row.group.runs]


def run_name(row: Row, run: RunRecord) -> str:
    """A counted run as the notes name it: its setting and seed."""
    return f"{row.group.label} seed {run.setting('seed')}"


def paper_shown(rows: Sequence[Row], study: Study) -> bool:
    """Whether the first table shows the paper's numbers (beside the study's metric only)."""
    return metrics_of(rows, study)[0] == study.metric and any(row.paper for row in rows)


def window_text(rows: Sequence[Row], study: Study) -> str:
    scales = {row.scale for row in rows if row.group.runs}
    scale = study.scale(scales.pop()) if len(scales) == 1 else None
    if scale is not None and scale.last_rounds is not None:
        return f"last {scale.last_rounds} rounds"
    if scale is not None and scale.last_fraction is not None:
        return f"last {scale.last_fraction:.0%} of rounds"
    return "last rounds"


def mean_last_header(rows: Sequence[Row], study: Study, metric: str) -> str:
    """The header of ``metric``'s mean over the last rounds: "mean acc % last 100 rounds"."""
    unit = " %" if is_percent(metric) else ""
    return f"mean {short(metric)}{unit} {window_text(rows, study)}"


# -- runs that have not finished (an interim report) -------------------------------------------


def unfinished(rows: Sequence[Row]) -> list[tuple[Row, RunRecord]]:
    """The counted runs that have not finished (``fedlm-report --include-unfinished``)."""
    return [(row, run) for row in rows for run in row.group.runs if not finished(run)]


def progress(run: RunRecord, metric: str) -> str:
    """How far an unfinished run got: "312 of 1200"."""
    return f"{last_round(run)} of {rounds_of(run, metric)}"


def interim_title(rows: Sequence[Row], study: Study) -> str:
    """The report's first line: whether it is interim (counts unfinished runs), and why."""
    open_runs = unfinished(rows)
    if not open_runs:
        return f"{study.name}: report"
    total = len(counted_runs(rows))
    return f"{study.name}: interim report, {len(open_runs)} of {total} runs not finished"


def interim_text(rows: Sequence[Row], study: Study) -> str | None:
    open_runs = unfinished(rows)
    if not open_runs:
        return None
    metric = metrics_of(rows, study)[0]
    runs = "; ".join(
        f"{run_name(row, run)} (run {run.run_id}, {run.status.lower()}) has trained "
        f"{progress(run, metric)} rounds"
        for row, run in open_runs
    )
    return (
        f"**Interim report** (`--include-unfinished`): {runs}. A final value or a mean over the "
        "last rounds that a run has not reached yet is –, never a value of other rounds; its best "
        "value and rounds to the target are those of the rounds it has run."
    )


# -- the notes, the paper and the differences ---------------------------------------------------


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
        + "; rounds to the target: over the runs that reached it (reached/runs): the first "
        + "round evaluated at or above it, and the round from which every evaluation up to the "
        + "run's last is at or above it."
    ]
    if study.statistic == "mean_last":
        lines.append(
            "Within window: the sample standard deviation of the evaluations a run's mean over "
            "the last rounds averages (the mean over the runs where there are several), and how "
            "many they are; the spread between seeds is the ± of the mean."
        )
    lines += time_notes(rows)
    stopped = stopped_note(rows)
    if stopped:
        lines.append(stopped)
    averaged = window_note(rows, study)
    if averaged:
        lines.append(averaged)
    for name in sorted({row.scale for row in rows if row.scale}):
        target = study.scale(name).target_accuracy
        if target is not None:
            lines.append(f"Scale {name}: target accuracy {target:.0%} ({study.metric}).")
    deltas = sorted({delta for row in rows for delta in deltas_of(row)})
    if deltas:
        shown = ", ".join(f"{d:.3g}" for d in deltas)
        lines.append(
            f"Epsilon: the privacy spent by the end of the run, at delta = {shown} (∞: no noise); "
            "the same for every seed of a setting."
        )
    if study.paper and paper_shown(rows, study):
        what = f": {study.paper_statistic}" if study.paper_statistic else ""
        lines.append(f"Paper: {study.paper}{what}.")
    return lines


def time_notes(rows: Sequence[Row]) -> list[str]:
    """What the time columns measure, and the resumed runs whose wall time spans interruptions."""
    lines = [
        "Times in minutes: wall time from a run's start to its end (for an unfinished run, to its "
        "last logged point), interruptions included; training time, the rounds' training "
        "(`round/seconds`); running time, training and evaluation (`round/seconds` + "
        "`eval/seconds`), without start-up or the time between an interruption and its "
        f"resumption; in both, a round or evaluation that took more than {STOPPED_FACTOR} times "
        f"the median of the {RECENT} before it counts as that median (a stopped process; each is "
        "named below). "
        "The plots against time show "
        f"{times.axis_name(counted_runs(rows))}."
    ]
    for row in rows:
        for run in row.group.runs:
            for key, step, logged, counted in times.stopped_points(run):
                what = "round" if key == times.ROUND_SECONDS else "the evaluation after round"
                lines.append(
                    f"Stopped: in {run_name(row, run)} (run {run.run_id}), {what} {step} took "
                    f"{logged:,.0f} s (`{key}`), more than {STOPPED_FACTOR} times the median of "
                    f"the {RECENT} before it ({counted:.1f} s): taken as a stopped process, it "
                    "counts as that median in training and running time."
                )
            if run.resumes:
                plural = "s" if run.resumes > 1 else ""
                since = run.tags.get(RESUMED_FROM_TAG, "")
                last = f", the last from round {since}" if since.isdigit() else ""
                lines.append(
                    f"Resumed: {run_name(row, run)} (run {run.run_id}) was interrupted and resumed "
                    f"({run.resumes} resume{plural}{last}): its wall time spans its "
                    "interruptions; its running time does not."
                )
    return lines


def stopped_note(rows: Sequence[Row]) -> str | None:
    """The runs that ended early at their ``training.stop_at`` target: finished, not cut short."""
    stopped = [
        f"{run_name(row, run)} at round {stopped_at(run)} of {run.params.get('training.rounds')}"
        for row in rows
        for run in row.group.runs
        if stopped_at(run) is not None
    ]
    if not stopped:
        return None
    return (
        "Stopped at the target (`training.stop_at`): "
        + "; ".join(stopped)
        + ". Each ended after the first evaluated round that reached it and is complete there: "
        "its final value, and the last rounds a mean averages, end at that round."
    )


def window_text_of(span: Window, run: RunRecord) -> str:
    """Which evaluations a run's mean over the last rounds averages, in words."""
    rounds = f"round {span.last}" if span.first == span.last else f"rounds {span.first}–{span.last}"
    if not span.reached:
        return f"not reached yet ({rounds}; last round trained {last_round(run)})"
    steps = span.steps
    if not steps:
        return f"no evaluation in {rounds}"
    if len(steps) == 1:
        return f"the one evaluation in {rounds} (after round {steps[0]})"
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    if len(gaps) == 1:
        gap = gaps.pop()
        spacing = "every round" if gap == 1 else f"every {gap} rounds"
    elif len(steps) <= 6:
        spacing = "after rounds " + ", ".join(str(s) for s in steps)
    else:
        spacing = f"irregularly, after rounds {steps[0]} to {steps[-1]}"
    return f"the mean over the {len(steps)} evaluations in {rounds} ({spacing})"


def window_note(rows: Sequence[Row], study: Study) -> str | None:
    """Which evaluations the mean over the last rounds averages, read from the runs: one sentence
    when every run averages the same, else what each averages."""
    described: dict[str, list[str]] = {}
    for row in rows:
        for run in row.group.runs:
            span = row.windows.get(run.run_id)
            if span is not None:
                described.setdefault(window_text_of(span, run), []).append(run_name(row, run))
    if not described:
        return None
    metric = metrics_of(rows, study)[0]
    header = mean_last_header(rows, study, metric)
    if len(described) == 1:
        ((text, names),) = described.items()
        runs = "the one run" if len(names) == 1 else f"each of the {len(names)} runs"
        return f"{header.capitalize()}: {text}, in {runs}."
    parts = [f"{', '.join(names)}: {text}" for text, names in described.items()]
    return f"{header.capitalize()}: the runs differ: " + "; ".join(parts) + "."


def differences(rows: Sequence[Row], study: Study) -> list[str]:
    """The study's differences from the paper, then those of the scales of the rows beside a
    paper number (named when there are several), when the paper's numbers are shown."""
    if not paper_shown(rows, study):
        return []
    items = list(study.differences)
    scales = sorted({row.scale for row in rows if row.paper is not None and row.scale})
    for name in scales:
        prefix = f"Scale {name}: " if len(scales) > 1 else ""
        items += [prefix + text for text in study.scale(name).differences]
    return items


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
