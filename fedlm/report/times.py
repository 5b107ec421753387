"""How long a run took, three ways, and the time axis of a report's plots.

- **Running time**: the seconds the round loop measured, summed up to each round: the training of
  the round (``round/seconds``) and its evaluation, where it had one (``eval/seconds``, round 0's
  evaluation included). Start-up, checkpoints and the hours between an interruption and a
  resumption (``fedlm.resumes``) are not in it, so a resumed run's curve has no gap.
- **Training time**: the ``round/seconds`` alone.
- **Wall time**: from the run's start to its end (to its last logged point while it has no end),
  interruptions included.

A round or evaluation that took more than 10 times the median of the 20 before it is taken as a
stopped process (SIGSTOP, a suspended machine: the pause lands in that round's seconds) and counts
as that median in running and training time (:func:`fedlm.tracking.summary.stopped`); the report's
notes name each one.

The plots' time axis is running time. A run that logged no ``round/seconds`` falls back to wall
time since its start; one that logged ``round/seconds`` but no ``eval/seconds`` (made before fedlm
logged it) to training time. The axis is labelled with what it shows.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

from fedlm.tracking.runs import RunRecord
from fedlm.tracking.summary import stopped

ROUND_SECONDS, EVAL_SECONDS = "round/seconds", "eval/seconds"
# What a run's time axis measures: (short name, axis label).
AXES = {
    "running": (
        "running time",
        "running time (minutes of training and evaluation, interruptions excluded)",
    ),
    "training": (
        "training time",
        "training time (minutes of training, interruptions excluded; evaluation time not logged)",
    ),
    "wall": ("wall time", "wall time (minutes since the run started)"),
}


def axis_of(run: RunRecord) -> str:
    """What ``run``'s time axis measures: "running", "training" or "wall" (see AXES)."""
    if not run.history.get(ROUND_SECONDS):
        return "wall"
    return "running" if run.history.get(EVAL_SECONDS) else "training"


def seconds_of(run: RunRecord, key: str) -> list[tuple[int, float]]:
    """``run``'s (step, seconds) of ``key`` (round/seconds or eval/seconds), a stopped point
    counted as the median of the points before it."""
    points = [(step, value) for step, value, _ in run.history.get(key, [])]
    left_out = stopped(points)
    return [(step, left_out[step][1] if step in left_out else value) for step, value in points]


def stopped_points(run: RunRecord) -> list[tuple[str, int, float, float]]:
    """(key, step, seconds logged, seconds counted) of each stopped point of ``run``."""
    found = []
    for key in (ROUND_SECONDS, EVAL_SECONDS):
        points = [(step, value) for step, value, _ in run.history.get(key, [])]
        for step, (logged, counted) in stopped(points).items():
            found.append((key, step, logged, counted))
    return found


def clock(run: RunRecord) -> Callable[[int, float], float]:
    """``run``'s time in seconds at a logged point (round, timestamp): its running time up to and
    including that round, or, without ``round/seconds``, wall-clock seconds since its start."""
    if axis_of(run) == "wall":
        start = run.start_time or 0.0
        return lambda step, timestamp: timestamp - start
    per_round: dict[int, float] = {}
    for key in (ROUND_SECONDS, EVAL_SECONDS):
        for step, value in seconds_of(run, key):
            per_round[step] = per_round.get(step, 0.0) + value
    steps = sorted(per_round)
    totals = list(itertools.accumulate(per_round[s] for s in steps))

    def seconds(step: int, timestamp: float) -> float:
        index = bisect.bisect_right(steps, step)
        return totals[index - 1] if index else 0.0

    return seconds


def running_minutes(run: RunRecord) -> float | None:
    """Minutes of training and evaluation, stopped time left out (None: no round/seconds)."""
    if not run.history.get(ROUND_SECONDS):
        return None
    points = [*seconds_of(run, ROUND_SECONDS), *seconds_of(run, EVAL_SECONDS)]
    return sum(value for _, value in points) / 60.0


def training_minutes(run: RunRecord) -> float | None:
    """Minutes of training, stopped time left out (None: no round/seconds logged)."""
    seconds = [value for _, value in seconds_of(run, ROUND_SECONDS)]
    return sum(seconds) / 60.0 if seconds else None


def wall_minutes(run: RunRecord) -> float | None:
    """Minutes from the run's start to its end, or to its last logged point while it has no end
    (a run still running); interruptions included."""
    if run.start_time is None:
        return None
    end = run.end_time
    if end is None:
        end = max((t for points in run.history.values() for _, _, t in points), default=None)
    return None if end is None else (end - run.start_time) / 60.0


def axis_kinds(runs: Sequence[RunRecord]) -> list[str]:
    """What the runs' time axes measure (see AXES), in AXES's order; "running" for no runs."""
    return sorted({axis_of(run) for run in runs}, key=list(AXES).index) or ["running"]


def axis_label(runs: Sequence[RunRecord]) -> str:
    """The plots' time axis label for ``runs`` (what it shows, mixed when they differ)."""
    kinds = axis_kinds(runs)
    if len(kinds) == 1:
        return AXES[kinds[0]][1]
    return "minutes: " + ", ".join(AXES[k][0] for k in kinds) + " (what each run logged)"


def axis_name(runs: Sequence[RunRecord]) -> str:
    """The time axis in a few words ("running time")."""
    kinds = axis_kinds(runs)
    return AXES[kinds[0]][0] if len(kinds) == 1 else "time"
