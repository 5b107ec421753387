"""Runs grouped by their swept settings, and each group's statistics over seeds (of the runs'
statistics, :mod:`fedlm.report.run_statistics`) beside the paper's number.

Which runs count: per setting and seed, the newest FINISHED run. Runs still RUNNING (or ended
without a status), FAILED or KILLED, and finished runs that a newer one supersedes, are kept aside
with the reason, never averaged in; a seed that other settings have and this one lacks is missing.
A finished run that stopped at its ``training.stop_at`` target (tagged ``fedlm.stopped_at_round``)
is complete at that round, though it trained fewer than ``training.rounds``.
With ``include_unfinished`` (``fedlm-report --include-unfinished``, an interim report), a seed
with no finished run counts its newest unfinished one instead: its statistics are of the rounds
it has run, and a statistic whose rounds it has not reached (the final value, the mean over the
last rounds) has no value, never a value of other rounds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fedlm.report.run_statistics import (
    METRIC_STATISTICS,
    RUN_KEYS,
    Window,
    finished,
    metric_statistics,
    run_statistics,
    statistic_window,
)
from fedlm.report.study import PaperNumber, Study
from fedlm.tracking.runs import RunRecord

# Keys that say where or how a job ran, not what it computed: never a setting to group by.
NOT_SETTINGS = ("seed", "resume", "output_dir", "hydra.", "hydra/", "tracking.", "runtime.")


@dataclass
class Group:
    settings: dict[str, str | None]  # swept key -> value
    runs: list[RunRecord] = field(default_factory=list)  # counted: newest finished per seed
    left_out: list[tuple[RunRecord, str]] = field(default_factory=list)  # (run, why)
    missing_seeds: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        shown = [f"{k}={v}" for k, v in self.settings.items() if v is not None]
        return " ".join(shown) or "all runs"


def swept_keys(runs: Sequence[RunRecord]) -> list[str]:
    """The settings that differ between runs, seeds aside: among the jobs' overrides when every
    run has them (a multirun's jobs), else among the logged params."""
    use_overrides = bool(runs) and all(run.overrides for run in runs)
    keys = set()
    for run in runs:
        keys.update(run.overrides if use_overrides else run.params)
    keys = {k for k in keys if not k.startswith(NOT_SETTINGS)}
    # A key a run did not log is null to it: runs logged before fedlm left out the keys of choices
    # not made (server_optimizer.beta_1 of an SGD run) hold them as null.
    return sorted(k for k in keys if len({run.setting(k) or "null" for run in runs}) > 1)


def group_runs(
    runs: Sequence[RunRecord], by: Sequence[str] | None = None, include_unfinished: bool = False
) -> list[Group]:
    """One group per combination of the swept settings (``by``, or :func:`swept_keys`), in the
    order the settings were first run; ``include_unfinished``: a seed without a finished run
    counts its newest unfinished one (see the module's docstring)."""
    keys = list(by) if by else swept_keys(runs)
    groups: dict[tuple, Group] = {}
    first_start: dict[tuple, float] = {}
    for run in runs:
        settings = {k: run.setting(k) for k in keys}
        key = tuple(settings.items())
        groups.setdefault(key, Group(settings)).runs.append(run)
        first_start[key] = min(first_start.get(key, math.inf), run.start_time or 0.0)
    seeds = {run.setting("seed") for run in runs} - {None}
    for group in groups.values():
        newest: dict[str | None, RunRecord] = {}
        unfinished: dict[str | None, RunRecord] = {}
        for run in sorted(group.runs, key=lambda r: r.start_time or 0.0):
            seed = run.setting("seed")
            if not finished(run) and not include_unfinished:
                group.left_out.append((run, _why(run.status)))
                continue
            kept = newest if finished(run) else unfinished
            if seed in kept:
                group.left_out.append((kept[seed], f"superseded by run {run.run_id}"))
            kept[seed] = run
        for seed, run in unfinished.items():
            if seed in newest:
                why = f"seed {seed} counts its finished run {newest[seed].run_id}"
                group.left_out.append((run, f"{_why(run.status)}; {why}"))
            else:
                newest[seed] = run
        group.runs = list(newest.values())
        group.missing_seeds = sorted(seeds - set(newest), key=sort_key)
    # In the order the settings were first run (a sweep's order), then by their values.
    order = sorted(groups, key=lambda k: (first_start[k], [sort_key(v) for _, v in k]))
    return [groups[k] for k in order]


def _why(status: str) -> str:
    if status in ("RUNNING", "SCHEDULED"):
        return "still running (or ended without a status)"
    return status.lower()


# -- one group --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A paper setting that the runs of a row do not share: the runs' values and the paper's."""

    key: str
    runs: tuple[str, ...]  # the distinct values the runs logged ("not logged" when absent)
    paper: str

    def __str__(self) -> str:
        return f"{self.key} {'/'.join(self.runs)} (paper {self.paper})"


# The one difference of a row whose paper number has no settings in paper.yaml.
UNSTATED = Difference("paper_settings", ("?",), "not stated in paper.yaml")


@dataclass
class Row:
    group: Group
    scale: str | None  # the runs' experiment_scale, when they share one
    # metric -> statistic (METRIC_STATISTICS) -> the counted runs' values (None left out)
    metrics: dict[str, dict[str, list[float]]]
    values: dict[str, list[float]]  # RUN_KEYS -> the counted runs' values (None left out)
    paper: PaperNumber | None
    target: float | None = None  # the scale's target accuracy
    # The paper's settings these runs do not share; empty: comparable with the paper's number.
    differences: list[Difference] = field(default_factory=list)
    # run id -> the rounds its mean_last statistic of the first metric averages (mean_last only)
    windows: dict[str, Window] = field(default_factory=dict)

    @property
    def reached(self) -> int:
        """Runs that reached the target accuracy."""
        return len(self.values.get("rounds_to_target", []))

    @property
    def stays(self) -> int:
        """Runs whose accuracy stays at or above the target to their last evaluation."""
        return len(self.values.get("rounds_to_stay", []))

    @property
    def comparable(self) -> bool:
        """Whether the row's runs used the paper's settings for every key paper.yaml names."""
        return self.paper is not None and not self.differences

    def values_of(self, key: str, metric: str | None = None) -> list[float]:
        """The counted runs' values of a run statistic (RUN_KEYS) or of ``metric``'s (the first
        metric when None); runs without a value are left out."""
        if key in METRIC_STATISTICS:
            return self.metrics.get(metric or next(iter(self.metrics), ""), {}).get(key, [])
        return self.values.get(key, [])

    def mean_std(self, key: str, metric: str | None = None) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation over seeds (None: no value, or one run) of a run
        statistic (RUN_KEYS) or of ``metric``'s (the first metric when None)."""
        values = self.values_of(key, metric)
        if not values:
            return None, None
        if any(math.isinf(v) for v in values):
            return statistics.fmean(values), None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(
    groups: Sequence[Group], study: Study, metrics: Sequence[str] | None = None
) -> list[Row]:
    """Per group, the statistics of each of ``metrics`` (default: the study's metric) and of the
    runs, the paper's number and the paper settings that the runs do not share."""
    metrics = list(metrics or [study.metric])
    rows = []
    for group in groups:
        per_metric = {}
        for metric in metrics:
            per_run = [metric_statistics(run, study, metric) for run in group.runs]
            per_metric[metric] = {
                k: [s[k] for s in per_run if s[k] is not None] for k in METRIC_STATISTICS
            }
        per_run = [run_statistics(run, study) for run in group.runs]
        values = {k: [s[k] for s in per_run if s[k] is not None] for k in RUN_KEYS}
        scales = {run.params.get("experiment_scale") for run in group.runs}
        scale = scales.pop() if len(scales) == 1 else None
        paper = paper_number(group.runs, study.numbers)
        differences = [] if paper is None else paper_differences(group.runs, study, paper)
        windows = {}
        if study.statistic == "mean_last":
            windows = {run.run_id: statistic_window(run, study, metrics[0]) for run in group.runs}
        rows.append(
            Row(
                group,
                scale,
                per_metric,
                values,
                paper,
                study.scale(scale).target_accuracy,
                differences,
                windows,
            )
        )
    return rows


def paper_differences(
    runs: Sequence[RunRecord], study: Study, number: PaperNumber
) -> list[Difference]:
    """The paper settings behind ``number`` that some of ``runs`` did not use."""
    wanted = study.settings_of(number)
    if wanted is None:
        return [UNSTATED]
    differences = []
    for key, value in wanted.items():
        logged = [run.setting(key) for run in runs]
        if not all(same(v, value) for v in logged):
            shown = tuple(sorted({"not logged" if v is None else v for v in logged}, key=sort_key))
            differences.append(Difference(key, shown, value))
    return differences


def paper_number(runs: Sequence[RunRecord], numbers: Iterable[PaperNumber]) -> PaperNumber | None:
    """The first published number whose ``match`` all the runs' settings satisfy."""
    if not runs:
        return None
    for number in numbers:
        if all(same(run.setting(k), v) for run in runs for k, v in number.match.items()):
            return number
    return None


def same(logged: str | None, wanted: str) -> bool:
    """Whether a logged param has the wanted value (numbers compared as numbers)."""
    if logged is None:
        return wanted == "null"
    try:
        return math.isclose(float(logged), float(wanted), rel_tol=1e-9)
    except ValueError:
        return logged == wanted


def sort_key(value: str | None) -> tuple:
    """Numbers by value, then text, then missing values."""
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)
