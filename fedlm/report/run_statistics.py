"""One run's statistics: the final, best and study's statistic (a mean over the last rounds, with
the spread and number of the evaluations it averages) of a metric; the rounds to the target (first
crossing, and for good); the wall, training and running time (:mod:`fedlm.report.times`); and,
with a DP aggregator, the privacy spent and the noise on the mean. A run that has not reached a
round has no value of the statistics of that round, never a value of other rounds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from fedlm.report import times
from fedlm.report.study import Scale, Study
from fedlm.tracking.runs import STOPPED_AT_TAG, RunRecord

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


def finished(run: RunRecord) -> bool:
    return run.status == "FINISHED"


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
