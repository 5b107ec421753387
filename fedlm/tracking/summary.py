"""A run's result in a few numbers, under fixed names that the MLflow runs table can sort by.

Logged when a run finishes (``fedlm.tracking.mlflow_tracker``), and computed the same way by a
sweep's parent run for each of its children, finished or not (``fedlm.tracking.sweeps``):

- ``summary/final_eval_accuracy``: ``eval/accuracy`` at the last evaluated round;
- ``summary/best_eval_accuracy`` and ``summary/best_round``: its highest value, and the round;
- ``summary/rounds``: the rounds trained;
- ``summary/running_minutes``: training and evaluation (``round/seconds`` + ``eval/seconds``),
  stopped time left out (see :func:`stopped`).

Stopped time: a process stopped mid-round (SIGSTOP, a suspended laptop) records the pause as part
of that round's seconds. A round that took more than ``STOPPED_FACTOR`` times the median of the
``RECENT`` rounds before it is taken as stopped, and counted as that median instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

METRIC = "eval/accuracy"  # the study's metric
ROUND_SECONDS, EVAL_SECONDS = "round/seconds", "eval/seconds"
FINAL = "summary/final_eval_accuracy"
BEST = "summary/best_eval_accuracy"
BEST_ROUND = "summary/best_round"
ROUNDS = "summary/rounds"
RUNNING_MINUTES = "summary/running_minutes"
KEYS = (FINAL, BEST, BEST_ROUND, ROUNDS, RUNNING_MINUTES)
STOPPED_FACTOR = 10
RECENT = 20  # rounds before a round that its time is compared with
MIN_RECENT = 3  # no round is taken as stopped with fewer timed rounds before it


def stopped(points: Sequence[tuple[int, float]]) -> dict[int, tuple[float, float]]:
    """The (step, seconds) points that took more than STOPPED_FACTOR times the median of the
    RECENT points before them: step -> (seconds logged, median counted instead)."""
    found = {}
    ordered = sorted(points)
    for i, (step, seconds) in enumerate(ordered):
        recent = [s for _, s in ordered[max(0, i - RECENT) : i]]
        if len(recent) < MIN_RECENT:
            continue
        median = statistics.median(recent)
        if seconds > STOPPED_FACTOR * median:
            found[step] = (seconds, median)
    return found


def running_seconds(history: Mapping[str, Sequence[tuple[int, float]]]) -> float | None:
    """Seconds of training and evaluation, each stopped point counted as its recent median
    (None: no round/seconds logged)."""
    if not history.get(ROUND_SECONDS):
        return None
    total = 0.0
    for key in (ROUND_SECONDS, EVAL_SECONDS):
        points = history.get(key, [])
        left_out = stopped(points)
        total += sum(left_out[step][1] if step in left_out else s for step, s in points)
    return total


def summary_metrics(history: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, float]:
    """The summary metrics (see the module's docstring) of a run's history, metric ->
    [(step, value)]; those it cannot compute are left out."""
    summary: dict[str, float] = {}
    accuracy = sorted(history.get(METRIC, []))
    if accuracy:
        summary[FINAL] = accuracy[-1][1]
        best_step, best = max(accuracy, key=lambda point: (point[1], -point[0]))
        summary[BEST], summary[BEST_ROUND] = best, float(best_step)
    rounds = [step for step, _ in history.get(ROUND_SECONDS, [])]
    if rounds:
        summary[ROUNDS] = float(max(rounds))
    seconds = running_seconds(history)
    if seconds is not None:
        summary[RUNNING_MINUTES] = seconds / 60.0
    return summary
