"""What one round of the loop (fedlm.experiment.run) is made of, apart from TFF's own step.

Its clients' training datasets, each shuffled by its own seed (the same on resume as in one go);
the batches each client trains, by which the clients are arranged over the workers; the round's
metrics and progress line (:class:`RoundReport`), with the time left at the recent pace; and
which rounds an evaluation, a sample of text or a checkpoint is due after (:func:`due`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedlm.config import TrainingConfig
from fedlm.data.inmemory import snippet_dataset
from fedlm.federated.aggregators import AggregatorMetrics

STOP_ROUND = "stop/round"  # metric, logged at the round training.stop_at was first reached


def client_seed(seed: int, round_num: int, index: int) -> int:
    """The shuffle seed of the index-th client of a round: the same on resume as in one go."""
    return int(np.random.SeedSequence([seed, round_num, index]).generate_state(1)[0])


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RemainingTime:
    """Time left, from the pace of the last ``window`` rounds (evaluations, checkpoints included).

    A pause (a stopped process, a busy machine) is forgotten once ``window`` rounds have passed,
    where an average since the start would carry it to the end of the run.
    """

    def __init__(self, window: int = 50, now: float | None = None):
        self.ends = deque([time.monotonic() if now is None else now], maxlen=window + 1)

    def after_round(self, rounds_left: int, now: float | None = None) -> float:
        self.ends.append(time.monotonic() if now is None else now)
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1) * rounds_left


def format_metrics(prefix: str, metrics: Mapping[str, float]) -> str:
    """``prefix: loss=..., accuracy=...``: the metrics ``prefix/loss`` and ``prefix/accuracy``."""
    shown = [k for k in ("loss", "accuracy") if f"{prefix}/{k}" in metrics]
    return f"{prefix}: " + ", ".join(f"{k}={metrics[f'{prefix}/{k}']:.3f}" for k in shown)


def start_line(rounds: int, metrics: Mapping[str, float]) -> str:
    """The progress line of round 0: the starting model's evaluation."""
    return f"round 0/{rounds} | " + format_metrics("eval", metrics)


def client_work(batches_per_epoch: int, training: TrainingConfig) -> int:
    """Batches a client trains in a round: its epochs, capped by ``max_batches_per_client``."""
    work = batches_per_epoch * training.local_epochs
    cap = training.max_batches_per_client
    return work if cap is None else min(work, cap)


def round_datasets(pipeline, snippets, client_ids, training: TrainingConfig, seed, round_num):
    """The training datasets of a round's clients, each shuffled by its own seed."""
    return [
        pipeline.train(
            snippet_dataset(snippets[client_id]),
            local_epochs=training.local_epochs,
            max_batches=training.max_batches_per_client,
            seed=client_seed(seed, round_num, i),
        )
        for i, client_id in enumerate(client_ids)
    ]


def training_metrics(train: Mapping[str, Any] | None, seconds: float) -> dict[str, float]:
    """A round's training metrics from TFF's ``client_work/train`` (None: no clients trained)."""
    if train is None:
        return {"round/seconds": seconds}
    return {
        **{f"train/{k}": float(v) for k, v in train.items()},
        "round/seconds": seconds,
        "round/examples_per_second": float(train["num_examples"]) / seconds,
        "round/tokens_per_second": float(train["num_tokens"]) / seconds,
    }


def due(every: int, round_num: int, last_round: int, final_window: int = 0) -> bool:
    """Whether something done every ``every`` rounds (0: never between), and after each of the
    last ``final_window`` rounds, is due after this round."""
    in_window = round_num > last_round - final_window
    return round_num == last_round or in_window or (every > 0 and round_num % every == 0)


class RoundReport:
    """A round's metrics and its progress line, from what the round did (one per run, made just
    before the first round: the time left is the recent pace, :class:`RemainingTime`)."""

    def __init__(self, training: TrainingConfig, skipped: int, aggregation: AggregatorMetrics):
        self.training, self.skipped, self.aggregation = training, skipped, aggregation
        self.remaining = RemainingTime()

    def __call__(
        self, round_num: int, output, sampled: int, evaluated: Mapping[str, float], seconds: float
    ) -> tuple[dict[str, float], str]:
        """``output``: TFF's metrics of the round (None: no round ran, nobody was drawn and no
        noise is due); ``evaluated``: the evaluation after it (empty: none). The metrics hold
        ``stop/round`` when they reach ``training.stop_at``."""
        train = output["client_work"]["train"] if sampled else None
        metrics = training_metrics(train, seconds)
        metrics["clients/sampled"] = float(sampled)
        metrics["clients/skipped"] = float(self.skipped)
        measurements = output["aggregator"] if output is not None else {}
        metrics.update(self.aggregation.round_metrics(measurements, round_num, sampled))
        metrics.update(evaluated)
        if self.training.stop_at.reached(metrics):
            metrics[STOP_ROUND] = float(round_num)
        rounds = self.training.rounds
        line = f"round {round_num}/{rounds} | "
        if sampled:
            line += format_metrics("train", metrics)
        else:
            line += "no clients drawn" + (" (noise only)" if output is not None else "")
        if "eval/loss" in metrics:
            line += " | " + format_metrics("eval", metrics)
        line += self.aggregation.progress(metrics)
        eta = format_duration(self.remaining.after_round(rounds - round_num))
        return metrics, f"{line} | {seconds:.1f} s/round | ETA {eta}"
