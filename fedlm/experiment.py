"""One federated training run, from a typed config to TFF and back, readable top to bottom.

    data -> task (pipeline + model) -> clients that have data -> sampler -> initial weights
    -> execution context -> learning process -> rounds (train, evaluate, generate, checkpoint)
    -> final evaluation and model

The rounds run to ``training.rounds``, or end at the first evaluated round that reaches
``training.stop_at`` (which is then the run's last round: checkpointed, generated from, its model
logged, the round tagged ``fedlm.stopped_at_round`` and logged as ``stop/round``).

Everything that can be wrong with the configuration is found before any TFF compilation.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import TrainConfig, TrainingConfig, validate
from fedlm.data.clients import build_stamp, client_snippets, load_client_data
from fedlm.data.inmemory import ClientSequences, snippet_dataset
from fedlm.data.sizes import eligible_clients
from fedlm.errors import ModelError
from fedlm.federated import runtime
from fedlm.federated.aggregators import AggregatorMetrics
from fedlm.federated.evaluation import (
    CentralizedEvaluator,
    FederatedEvaluator,
    evaluation_client_ids,
    evaluation_sequences,
)
from fedlm.federated.process import build_learning_process
from fedlm.federated.samplers import Sampler, build_sampler
from fedlm.federated.task import Task, build_pipeline
from fedlm.models.generate import generate_text
from fedlm.models.pretrained import load_pretrained_weights, pretrained_available
from fedlm.tracking.base import Checkpoint, Tracker
from fedlm.tracking.runs import (
    PARAMETERS_TAG,
    PARSER_VERSION_TAG,
    SOURCE_SHA256_TAG,
    STOPPED_AT_TAG,
    VOCAB_SIZE_TAG,
)

STOP_ROUND = "stop/round"  # metric, logged at the round training.stop_at was first reached
STOPPED_AT = "stopped_at_round"  # in a checkpoint's extra: the run ended there at its target


@dataclass
class RunResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per logged step
    generated: dict[int, str] = field(default_factory=dict)  # round -> text
    final_weights: Any = None
    run_id: str | None = None


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
    shown = [k for k in ("loss", "accuracy") if k in metrics]
    return f"{prefix}: " + ", ".join(f"{k}={metrics[k]:.3f}" for k in shown)


def initial_weights(cfg: TrainConfig, task: Task, say: Callable[[str], None]) -> list | None:
    """The pre-trained weights ``model.pretrained`` names, or None for random initialisation."""
    spec = cfg.model.pretrained
    if spec in (None, "", "none"):
        return None
    if spec == "dickens" and not pretrained_available(spec, cfg.model.name):
        if cfg.model.pretrained_required:
            raise ModelError(
                "model.pretrained='dickens': this study starts from the pre-trained Dickens "
                "model, and there is none: make one with `uv run fedlm-pretrain` (about 45 "
                "minutes, see the README), or run online so that TFF's published model is "
                "downloaded, or set model.pretrained=none to start from random weights"
            )
        say(
            "No pre-trained Dickens model: none in fedlm's cache, and downloading TFF's published "
            "one failed (no network?): starting from random weights (`uv run fedlm-pretrain` "
            "makes one)."
        )
        return None
    return load_pretrained_weights(spec, cfg.model, task.vocab_size)


def starting_weights(task: Task, pretrained: list | None) -> tff.learning.models.ModelWeights:
    """The pre-trained weights, or a seeded random initialisation, as TFF model weights."""
    model = task.keras_model()
    if pretrained is not None:
        model.set_weights(pretrained)
    return tff.learning.models.ModelWeights.from_model(model)


def provenance(cfg: TrainConfig, task: Task, weights) -> dict[str, str]:
    """What the run's result depends on beyond its config, as tags: the model's parameter count
    and vocabulary size, and the parser version and source SHA-256 of the data build it reads
    (from the build's stamp: none for synthetic data or TFF's download)."""
    count = sum(int(np.size(w)) for w in [*weights.trainable, *weights.non_trainable])
    tags = {PARAMETERS_TAG: str(count), VOCAB_SIZE_TAG: str(task.vocab_size)}
    stamp = build_stamp(cfg.data.name, cfg.data.cache_dir) or {}
    for tag, key in ((PARSER_VERSION_TAG, "parser_version"), (SOURCE_SHA256_TAG, "source_sha256")):
        if key in stamp:
            tags[tag] = stamp[key]
    return tags


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


@dataclass
class Setup:
    """What a run needs before anything is compiled: found, read and checked once."""

    task: Task
    pretrained: list | None
    train_snippets: dict[str, list[str]]  # every training client's text, read once
    eligible: dict[str, int]  # client id -> batches per epoch, for the clients with data
    sampler: Sampler
    eval_sequences: ClientSequences | None  # the evaluation clients' sequences, made once

    @property
    def pipeline(self):
        return self.task.pipeline


def prepare(cfg: TrainConfig, say: Callable[[str], None] = print) -> Setup:
    """Everything cheap and checkable, before any TFF compilation: weights, data, clients,
    sampler, evaluation set. Raises :class:`ConfigError` or :class:`DataError` on bad input."""
    validate(cfg)
    pipeline = build_pipeline(cfg.data, cfg.training)
    task = Task(pipeline, cfg.model)
    t = cfg.training
    tf.keras.utils.set_random_seed(cfg.seed)
    pretrained = initial_weights(cfg, task, say)
    say(f"data: reading the {cfg.data.name} clients' text")  # with a first build, 15-30 s
    train_data, test_data = load_client_data(
        cfg.data.name, cfg.data.cache_dir, cfg.data.source, cfg.data.source_url
    )
    # Every client's text is read once, here; the rounds and the evaluation use it from memory.
    train_snippets = client_snippets(train_data, cfg.data, "train")
    eligible = eligible_clients(pipeline, train_snippets)
    skipped = len(train_snippets) - len(eligible)
    say(
        f"data: {len(train_snippets)} training clients, {len(eligible)} with data under "
        f"pipeline={pipeline.name} seq_len={t.seq_len} batch_size={t.batch_size}"
        + (f" ({skipped} empty, never sampled)" if skipped else "")
    )
    sampler = build_sampler(
        cfg.sampler.name,
        eligible,
        t.clients_per_round,
        cfg.seed,
        fixed_client_ids=cfg.sampler.client_ids,
        all_client_ids=list(train_snippets),
    )
    eval_pipeline = (
        dataclasses.replace(pipeline, batch_size=cfg.eval.batch_size)
        if cfg.eval.batch_size
        else pipeline
    )
    test_snippets = client_snippets(test_data, cfg.data, "test")
    eval_ids = evaluation_client_ids(
        cfg.eval, eligible_clients(eval_pipeline, test_snippets, key=None), list(test_snippets)
    )
    eval_sequences = evaluation_sequences(cfg.eval, eval_pipeline, test_snippets, eval_ids)
    return Setup(task, pretrained, train_snippets, eligible, sampler, eval_sequences)


def run(cfg: TrainConfig, tracker: Tracker | None = None, say: Callable[[str], None] = print):
    """Run federated training as ``cfg`` says; return the history and the final weights."""
    tracker = tracker or Tracker()
    setup = prepare(cfg, say)
    task, pipeline, sampler, eligible = setup.task, setup.pipeline, setup.sampler, setup.eligible
    train_snippets, eval_sequences = setup.train_snippets, setup.eval_sequences
    skipped = len(train_snippets) - len(eligible)
    t = cfg.training
    eval_batch_size = cfg.eval.batch_size or t.batch_size
    tracker.start(dataclasses.asdict(cfg))
    try:
        result = RunResult(run_id=tracker.run_id)

        start_weights = starting_weights(task, setup.pretrained)
        tracker.set_tags(provenance(cfg, task, start_weights))
        shapes = [w.shape for w in start_weights.trainable]
        aggregation = AggregatorMetrics(
            cfg.aggregator, t.clients_per_round, len(eligible), shapes, sampler=cfg.sampler.name
        )
        if aggregation.accountant is not None:
            say(f"privacy: {aggregation.accountant.describe()}")
        # Keras models made before TFF traces its own (in a graph) stop working, so the
        # evaluation and export models are made after the TFF processes are built.
        keras_model = centralized = None

        federated = None  # TFF's evaluation process, built inside the execution context

        def evaluate(weights) -> dict[str, float]:
            metrics = {}
            started = time.monotonic()
            if centralized is not None:
                metrics.update({f"eval/{k}": v for k, v in centralized(weights).items()})
            if federated is not None:
                metrics.update({f"fed_eval/{k}": v for k, v in federated(weights).items()})
            if metrics:
                metrics["eval/seconds"] = time.monotonic() - started
            return metrics

        def generate(weights, round_num: int) -> None:
            if cfg.eval.generate_length <= 0:
                return
            text = generate_text(
                keras_weights(weights),
                cfg.model,
                task.vocab_size,
                cfg.eval.prompt,
                length=cfg.eval.generate_length,
                temperature=cfg.eval.temperature,
                seed=cfg.seed + round_num,
                id_offset=task.char_id_offset,
            )
            result.generated[round_num] = text
            tracker.log_text("generated_text", text, round_num)
            say(f"generated text (round {round_num}):\n{text}\n")

        def keras_weights(weights) -> list[np.ndarray]:
            weights.assign_weights_to(keras_model)
            return keras_model.get_weights()

        with runtime.execution_context(cfg.runtime, say=say) as rt:
            element_spec = pipeline.train(snippet_dataset(train_snippets[next(iter(eligible))]))
            element_spec = element_spec.element_spec
            say(f"process: building TFF's {cfg.algorithm.name} learning process")  # 10-30 s
            process = build_learning_process(
                task.model_fn(element_spec),
                cfg.algorithm,
                cfg.client_optimizer,
                cfg.server_optimizer,
                ignore_id=pipeline.ignore_id,
                aggregator=cfg.aggregator,
                clients_per_round=t.clients_per_round,
            )
            if cfg.eval.federated and eval_sequences is not None:
                federated = FederatedEvaluator(task, eval_sequences, eval_batch_size)
            keras_model = task.keras_model()
            if cfg.eval.centralized and eval_sequences is not None:
                centralized = CentralizedEvaluator(task, eval_sequences, eval_batch_size)
            state = process.set_model_weights(process.initialize(), start_weights)
            first_round = 1
            stopped_at = None  # the round at which training.stop_at was reached
            checkpoint = tracker.restore(state)
            if checkpoint is not None:
                state = checkpoint.server_state
                sampler.load_state(checkpoint.sampler_state)
                first_round = checkpoint.round_num + 1
                stopped_at = checkpoint.extra.get(STOPPED_AT)
                if stopped_at is not None:
                    first_round = t.rounds + 1
                    say(f"{t.stop_at} was reached at round {stopped_at}: no round to train")
                elif checkpoint.round_num < t.rounds:  # else the tracker said: nothing to resume
                    say(f"resuming after round {checkpoint.round_num} of {t.rounds}")
            else:
                weights = process.get_model_weights(state)
                metrics = evaluate(weights)
                if metrics:
                    tracker.log_metrics(metrics, step=0)
                    result.history.append({"round": 0, **metrics})
                    say(f"round 0/{t.rounds} | " + format_metrics("eval", _strip(metrics, "eval/")))
                generate(weights, 0)

            remaining = RemainingTime()
            for round_num in range(first_round, t.rounds + 1):
                if round_num == first_round:  # TFF traces its computations first: 10-30 s
                    say(f"training: round {round_num} of {t.rounds} started")
                round_start = time.monotonic()
                client_ids = sampler.sample()
                # A Poisson draw may be empty. With DP the round still runs, on no clients, so
                # the server applies the noise alone: that is the release the accountant counts
                # (skipping it would tell that nobody was drawn). Without DP it is skipped (TFF's
                # mean of no updates is 0 / 0). Either way it counts as a round.
                noise_only = not client_ids and aggregation.accountant is not None
                measurements = {}
                if client_ids or noise_only:
                    datasets = round_datasets(
                        pipeline, train_snippets, client_ids, t, cfg.seed, round_num
                    )
                    # Arranged so that the workers' shares of the round take about equally long.
                    order = rt.order([client_work(eligible[c], t) for c in client_ids])
                    output = process.next(state, [datasets[i] for i in order])
                    state = output.state
                    measurements = output.metrics["aggregator"]
                seconds = time.monotonic() - round_start
                train = output.metrics["client_work"]["train"] if client_ids else None
                metrics = training_metrics(train, seconds)
                metrics["clients/sampled"] = float(len(client_ids))
                metrics["clients/skipped"] = float(skipped)
                metrics.update(aggregation.round_metrics(measurements, round_num, len(client_ids)))
                weights = None
                if due(cfg.eval.every, round_num, t.rounds, cfg.eval.final_window):
                    weights = process.get_model_weights(state)
                    metrics.update(evaluate(weights))
                if t.stop_at.reached(metrics):
                    stopped_at = round_num
                    metrics[STOP_ROUND] = float(round_num)
                tracker.log_metrics(metrics, step=round_num)
                result.history.append({"round": round_num, **metrics})
                eta = remaining.after_round(t.rounds - round_num)
                line = f"round {round_num}/{t.rounds} | "
                if client_ids:
                    line += format_metrics("train", _strip(metrics, "train/"))
                else:
                    line += "no clients drawn" + (" (noise only)" if noise_only else "")
                if "eval/loss" in metrics:
                    line += " | " + format_metrics("eval", _strip(metrics, "eval/"))
                line += aggregation.progress(metrics)
                say(f"{line} | {seconds:.1f} s/round | ETA {format_duration(eta)}")
                # Reaching the target ends the run as its last round would.
                last = stopped_at is not None
                if last or due(cfg.eval.generate_every, round_num, t.rounds):
                    generate(weights or process.get_model_weights(state), round_num)
                if last or due(cfg.tracking.checkpoint_every, round_num, t.rounds):
                    extra = {STOPPED_AT: round_num} if last else {}
                    tracker.save_checkpoint(Checkpoint(round_num, state, sampler.state, extra))
                if last:
                    say(f"{t.stop_at} reached at round {round_num}: training stops")
                    break

            last_round = t.rounds if stopped_at is None else stopped_at
            if stopped_at is not None:
                tracker.set_tags({STOPPED_AT_TAG: str(stopped_at)})
            tracker.set_tags(aggregation.tags(last_round))
            final = process.get_model_weights(state)
            result.final_weights = keras_weights(final)
            tracker.log_model(keras_model, step=last_round)
    except (KeyboardInterrupt, SystemExit):
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return result


def _strip(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
