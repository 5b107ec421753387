"""Runs grouped by their swept settings, and each group's statistics over seeds.

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

from fedlm.report import times
from fedlm.report.study import PaperNumber, Scale, Study
from fedlm.tracking.runs import STOPPED_AT_TAG, RunRecord

# Keys that say where or how a job ran, not what it computed: never a setting to group by.
NOT_SETTINGS = ("seed", "resume", "output_dir", "hydra.", "hydra/", "tracking.", "runtime.")
# Per metric; window_std and window_evaluations: the sample standard deviation and the number of
# the evaluations that a run's mean_last averages (its spread within the window, not between seeds).
METRIC_STATISTICS = ("final", "best", "mean_last", "window_std", "window_evaluations")
# Per run, whatever the metric: the first round at the target, and the round from which every
# evaluation is at or above it (rounds_to_stay); epsilon: the privacy spent, with a DP aggregator;
# noise_on_mean: the standard deviation of the noise on each coordinate of the averaged update
# after the last round (noise multiplier x clip / clients per round), what privacy costs the model.
RUN_KEYS = (
    "rounds_to_target",
    "rounds_to_stay",
    "wall_minutes",
    "train_minutes",
    "running_minutes",
    "epsilon",
    "noise_on_mean",
)
# logged by runs with a DP aggregator (fedlm/federated/aggregators.py)
EPSILON, DELTA = "privacy/epsilon", "privacy/delta"
CLIP_NORM = "aggregator/clip_norm"
REPLACE_ONE = "replace-one, fixed-size sample"
ADD_OR_REMOVE = "add-or-remove, Poisson sample"
# MLflow's SQL stores keep an infinite metric as the largest float: read it back as infinite.
INFINITE = 1e300


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


def finished(run: RunRecord) -> bool:
    return run.status == "FINISHED"


def _why(status: str) -> str:
    if status in ("RUNNING", "SCHEDULED"):
        return "still running (or ended without a status)"
    return status.lower()


# -- one run ----------------------------------------------------------------------------------


def points(run: RunRecord, metric: str) -> list[tuple[int, float, float]]:
    """(round, value, seconds of the run's time) of ``metric``; round 0 is before training. The
    time is the run's running time up to that round (:func:`fedlm.report.times.clock`)."""
    seconds = times.clock(run)
    return [(step, value, seconds(step, t)) for step, value, t in run.history.get(metric, [])]


def last_round(run: RunRecord) -> int:
    """The last round the run trained (logged round/seconds for), else the last step it logged."""
    trained = [step for step, _, _ in run.history.get(times.ROUND_SECONDS, [])]
    logged = trained or [step for points in run.history.values() for step, _, _ in points]
    return max(logged, default=0)


def reached(run: RunRecord, round_num: int) -> bool:
    """Whether the run has trained through ``round_num`` (a finished run has trained them all)."""
    return finished(run) or last_round(run) >= round_num


def stopped_at(run: RunRecord) -> int | None:
    """The round at which the run stopped at its ``training.stop_at`` target (None: it did not):
    its last round, fewer than ``training.rounds``, and a finished run is complete there."""
    value = run.tags.get(STOPPED_AT_TAG, "")
    return int(value) if value.isdigit() else None


def rounds_of(run: RunRecord, metric: str) -> int:
    """The rounds the run trained to its end: the round it stopped at its target, else the rounds
    it was set to train (its param), else the last round it logged."""
    if stopped_at(run) is not None:
        return stopped_at(run)
    value = run.params.get("training.rounds", "")
    if value.isdigit():
        return int(value)
    return max((step for step, _, _ in run.history.get(metric, [])), default=0)


def rounds_to_target(run: RunRecord, metric: str, target: float) -> int | None:
    """The first round after which ``metric`` reached ``target`` (None: never)."""
    for step, value, _ in run.history.get(metric, []):
        if step >= 1 and value >= target:
            return step
    return None


def rounds_to_stay(run: RunRecord, metric: str, target: float) -> int | None:
    """The first evaluated round from which every evaluation of ``metric`` up to the run's last is
    at or above ``target`` (None: its last evaluation is below). For a run that has not finished,
    of the rounds it has run."""
    stays = None
    for step, value, _ in run.history.get(metric, []):
        if step >= 1:
            stays = (stays or step) if value >= target else None
    return stays


def window(scale: Scale, rounds: int) -> int:
    """How many of the last rounds the mean_last statistic averages over."""
    if scale.last_rounds is not None:
        return min(scale.last_rounds, rounds)
    if scale.last_fraction is not None:
        return max(1, round(scale.last_fraction * rounds))
    return rounds


@dataclass(frozen=True)
class Window:
    """The rounds a run's mean_last statistic averages: rounds ``first`` to ``last``, of which it
    evaluated ``steps``; ``reached``: the run has trained through round ``last``."""

    first: int
    last: int
    steps: tuple[int, ...]
    reached: bool


def statistic_window(run: RunRecord, study: Study, metric: str) -> Window:
    """The window of the mean_last statistic of ``metric`` in ``run``, read from its history."""
    rounds = rounds_of(run, metric)
    first = max(rounds - window(study.scale(run.params.get("experiment_scale")), rounds) + 1, 1)
    steps = tuple(step for step, _, _ in run.history.get(metric, []) if first <= step <= rounds)
    return Window(first, rounds, steps, reached(run, rounds))


def window_values(run: RunRecord, metric: str, span: Window) -> list[float]:
    """The evaluations of ``metric`` in ``span`` (none while the run has not reached its end)."""
    if not span.reached:
        return []
    return [value for step, value, _ in run.history.get(metric, []) if step in span.steps]


def mean_last(run: RunRecord, metric: str, span: Window) -> float | None:
    """The mean of ``metric`` over the evaluations in ``span`` (None: none, or not reached)."""
    values = window_values(run, metric, span)
    return statistics.fmean(values) if values else None


def higher_is_better(metric: str) -> bool:
    """Accuracies grow as a model improves; losses, perplexity and bits per character fall."""
    return "accuracy" in metric.rsplit("/", 1)[-1]


def metric_statistics(run: RunRecord, study: Study, metric: str) -> dict[str, float | None]:
    """Final and best value of ``metric`` (best: highest accuracy, lowest loss) and the study's
    statistic of it (mean over the last rounds, with the standard deviation and the number of the
    evaluations it averages) for one run (None where it has no value: the standard deviation of
    fewer than two evaluations; the final value and those of the last rounds also while the run
    has not reached its last round)."""
    trained = [(step, value) for step, value, _ in points(run, metric) if step >= 1]
    pick = max if higher_is_better(metric) else min
    result: dict[str, float | None] = {
        "final": trained[-1][1] if trained and reached(run, rounds_of(run, metric)) else None,
        "best": pick((value for _, value in trained), default=None),
        "mean_last": None,
        "window_std": None,
        "window_evaluations": None,
    }
    if study.statistic == "mean_last":
        values = window_values(run, metric, statistic_window(run, study, metric))
        if values:
            result["mean_last"] = statistics.fmean(values)
            result["window_std"] = statistics.stdev(values) if len(values) > 1 else None
            result["window_evaluations"] = len(values)
    return result


def run_statistics(run: RunRecord, study: Study) -> dict[str, float | None]:
    """Rounds to the study's target (of the study's metric: the first round at it, and the round
    from which it stays at or above it), wall, training and running minutes
    (:mod:`fedlm.report.times`), and the privacy spent (epsilon after the last round) of one run
    (None where it has no value)."""
    scale = study.scale(run.params.get("experiment_scale"))
    result: dict[str, float | None] = {
        "rounds_to_target": None,
        "rounds_to_stay": None,
        "wall_minutes": times.wall_minutes(run),
        "train_minutes": times.training_minutes(run),
        "running_minutes": times.running_minutes(run),
        "epsilon": epsilon_at(run, rounds_of(run, study.metric)),
        "noise_on_mean": noise_on_mean(run),
    }
    if scale.target_accuracy is not None:
        result["rounds_to_target"] = rounds_to_target(run, study.metric, scale.target_accuracy)
        result["rounds_to_stay"] = rounds_to_stay(run, study.metric, scale.target_accuracy)
    return result


def noise_on_mean(run: RunRecord) -> float | None:
    """noise multiplier x clip / clients per round after the run's last round (the adaptive
    clip's last logged value, or dp_fixed's clip); None without a DP aggregator."""
    noise = run.setting("aggregator.noise_multiplier")
    clients = run.setting("training.clients_per_round")
    clipped = run.history.get(CLIP_NORM)
    clip = clipped[-1][1] if clipped else run.setting("aggregator.clip")
    try:
        return float(noise) * float(clip) / float(clients)
    except (TypeError, ValueError):  # not logged, or null: no DP aggregator
        return None


def adjacency(run: RunRecord) -> str:
    """What a DP run's epsilon is for: fedlm accounts Poisson sampling for add-or-remove
    adjacency and fixed-size sampling for replace-one (fedlm/federated/privacy.py)."""
    return ADD_OR_REMOVE if run.setting("sampler.name") == "poisson" else REPLACE_ONE


def epsilon_at(run: RunRecord, round_num: int) -> float | None:
    """The epsilon the run had spent after ``round_num`` (None: no DP aggregator)."""
    values = [value for step, value, _ in run.history.get(EPSILON, []) if step == round_num]
    if not values:
        return None
    return math.inf if values[-1] >= INFINITE else values[-1]


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
