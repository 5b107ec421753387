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

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.checks import validate
from fedlm.config import TrainConfig, TrainingConfig
from fedlm.data.clients import build_stamp, load_snippets
from fedlm.data.inmemory import ClientSequences, snippet_dataset
from fedlm.data.sizes import eligible_clients
from fedlm.errors import ModelError
from fedlm.federated import runtime
from fedlm.federated.aggregators import AggregatorMetrics
from fedlm.federated.evaluation import Evaluation, evaluation_client_ids, evaluation_sequences
from fedlm.federated.process import build_learning_process, model_weights
from fedlm.federated.samplers import Sampler, build_sampler
from fedlm.federated.task import Task, build_pipeline
from fedlm.models.generate import TextGenerator
from fedlm.models.pretrained import load_pretrained_weights, pretrained_available
from fedlm.rounds import (
    STOP_ROUND,
    RoundReport,
    client_work,
    due,
    round_datasets,
    start_line,
)
from fedlm.tracking.base import Checkpoint, Tracker
from fedlm.tracking.runs import (
    PARAMETERS_TAG,
    PARSER_VERSION_TAG,
    SOURCE_SHA256_TAG,
    STOPPED_AT_TAG,
    VOCAB_SIZE_TAG,
)

STOPPED_AT = "stopped_at_round"  # in a checkpoint's extra: the run ended there at its target


@dataclass
class RunResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per logged step
    generated: dict[int, str] = field(default_factory=dict)  # round -> text
    final_weights: Any = None
    run_id: str | None = None


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


@dataclass
class Setup:
    """What a run needs before anything is compiled: found, read and checked once."""

    task: Task
    pretrained: list | None
    train_snippets: dict[str, list[str]]  # every training client's text, read once
    eligible: dict[str, int]  # client id -> batches per epoch, for the clients with data
    sampler: Sampler
    eval_sequences: ClientSequences | None  # the evaluation clients' sequences, made once
    skipped: int  # training clients without a single batch: never sampled

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
    # Every client's text is read once, here; the rounds and the evaluation use it from memory.
    snippets = load_snippets(cfg.data, say)
    train_snippets = snippets.train
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
    test_snippets = snippets.test
    eval_ids = evaluation_client_ids(
        cfg.eval, eligible_clients(eval_pipeline, test_snippets, key=None), list(test_snippets)
    )
    eval_sequences = evaluation_sequences(cfg.eval, eval_pipeline, test_snippets, eval_ids)
    return Setup(task, pretrained, train_snippets, eligible, sampler, eval_sequences, skipped)


def aggregation_for(cfg: TrainConfig, setup: Setup, weights, say) -> AggregatorMetrics:
    """What the aggregator measures and its privacy accounting, said once when there is one."""
    shapes = [w.shape for w in weights.trainable]
    aggregation = AggregatorMetrics(
        cfg.aggregator,
        cfg.training.clients_per_round,
        len(setup.eligible),
        shapes,
        sampler=cfg.sampler.name,
    )
    if aggregation.accountant is not None:
        say(f"privacy: {aggregation.accountant.describe()}")
    return aggregation


def learning_process(cfg: TrainConfig, setup: Setup, say: Callable[[str], None]):
    """TFF's learning process that ``cfg`` names, for the pipeline's batches (traced: 10-30 s)."""
    example = setup.pipeline.train(
        snippet_dataset(setup.train_snippets[next(iter(setup.eligible))])
    )
    say(f"process: building TFF's {cfg.algorithm.name} learning process")
    return build_learning_process(
        setup.task.model_fn(example.element_spec),
        cfg.algorithm,
        cfg.client_optimizer,
        cfg.server_optimizer,
        ignore_id=setup.pipeline.ignore_id,
        aggregator=cfg.aggregator,
        clients_per_round=cfg.training.clients_per_round,
    )


def resume(tracker: Tracker, state, sampler: Sampler, training: TrainingConfig, say):
    """``(state, first_round, stopped_at)``: where the run goes on from. A new run's own state and
    round 1, or its last checkpoint's state (the sampler's too) and the round after it;
    ``stopped_at`` is the round at which ``training.stop_at`` was reached (then no round is left),
    else None."""
    checkpoint = tracker.restore(state)
    if checkpoint is None:
        return state, 1, None
    sampler.load_state(checkpoint.sampler_state)
    stopped_at = checkpoint.extra.get(STOPPED_AT)
    if stopped_at is not None:
        say(f"{training.stop_at} was reached at round {stopped_at}: no round to train")
        return checkpoint.server_state, training.rounds + 1, stopped_at
    if checkpoint.round_num < training.rounds:  # else the tracker said: nothing to resume
        say(f"resuming after round {checkpoint.round_num} of {training.rounds}")
    return checkpoint.server_state, checkpoint.round_num + 1, None


def train_round(state, client_ids, setup: Setup, cfg: TrainConfig, round_num, rt, dp):
    """Round ``round_num`` from the server state ``state`` (``Runtime.server_state``, which it
    advances) on ``client_ids``: TFF's metrics.

    A Poisson draw may be empty. With DP (``dp``) the round still runs, on no clients, so the
    server applies the noise alone: that is the release the accountant counts (skipping it would
    tell that nobody was drawn). Without DP it is skipped, its metrics None (TFF's mean of no
    updates is 0 / 0). Either way it counts as a round.
    """
    if not client_ids and not dp:
        return None
    datasets = round_datasets(
        setup.pipeline, setup.train_snippets, client_ids, cfg.training, cfg.seed, round_num
    )
    # Arranged so that the workers' shares of the round take about equally long.
    order = rt.order([client_work(setup.eligible[c], cfg.training) for c in client_ids])
    return state.next([datasets[i] for i in order])


class ServerModel:
    """A Keras model the server weights are copied into: to generate text from and to log."""

    def __init__(self, cfg: TrainConfig, task: Task):
        self.cfg, self.task = cfg, task
        self.keras_model = task.keras_model()
        self.generator: TextGenerator | None = None

    def weights(self, weights: tff.learning.models.ModelWeights) -> list[np.ndarray]:
        weights.assign_weights_to(self.keras_model)
        return self.keras_model.get_weights()

    def generate(self, weights: tff.learning.models.ModelWeights, round_num: int) -> str:
        """``eval.generate_length`` characters after ``eval.prompt``, seeded by the round."""
        if self.generator is None:  # built at the first text, kept for the run
            self.generator = TextGenerator(
                self.cfg.model, self.task.vocab_size, self.task.char_id_offset
            )
        e = self.cfg.eval
        return self.generator(
            self.weights(weights),
            e.prompt,
            length=e.generate_length,
            temperature=e.temperature,
            seed=self.cfg.seed + round_num,
        )


def record(result: RunResult, tracker: Tracker, round_num: int, metrics: dict[str, float]):
    tracker.log_metrics(metrics, step=round_num)
    result.history.append({"round": round_num, **metrics})


def generate(server: ServerModel, weights, round_num: int, result, tracker, say) -> None:
    """Text from ``weights`` (none with ``eval.generate_length=0``): kept, logged and said."""
    if server.cfg.eval.generate_length <= 0:
        return
    text = server.generate(weights, round_num)
    result.generated[round_num] = text
    tracker.log_text("generated_text", text, round_num)
    say(f"generated text (round {round_num}):\n{text}\n")


@contextlib.contextmanager
def finished(tracker: Tracker) -> Iterator[None]:
    """End the tracker's run as the block ends: FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")


def run(cfg: TrainConfig, tracker: Tracker | None = None, say: Callable[[str], None] = print):
    """Run federated training as ``cfg`` says; return the history and the final weights."""
    tracker = tracker or Tracker()
    setup = prepare(cfg, say)
    t = cfg.training
    tracker.start(dataclasses.asdict(cfg))
    with finished(tracker):
        result = RunResult(run_id=tracker.run_id)
        start_weights = starting_weights(setup.task, setup.pretrained)
        tracker.set_tags(provenance(cfg, setup.task, start_weights))
        aggregation = aggregation_for(cfg, setup, start_weights, say)
        with runtime.execution_context(cfg.runtime, say=say) as rt:
            process = learning_process(cfg, setup, say)
            # Keras models made before TFF traces its own (in a graph) stop working, so the
            # evaluation and export models are made after the TFF processes are built.
            evaluation = Evaluation(cfg.eval, setup.task, setup.eval_sequences)
            server = ServerModel(cfg, setup.task)
            state = process.set_model_weights(process.initialize(), start_weights)
            state, first_round, stopped_at = resume(tracker, state, setup.sampler, t, say)
            state = rt.server_state(process, state)  # kept on the worker where it can stay
            if first_round == 1:  # a new run (checkpoints come after rounds): round 0 is its start
                weights = model_weights(process, state.value)
                metrics = evaluation(weights)
                if metrics:
                    record(result, tracker, 0, metrics)
                    say(start_line(t.rounds, metrics))
                generate(server, weights, 0, result, tracker, say)
            report = RoundReport(t, setup.skipped, aggregation)
            dp = aggregation.accountant is not None  # then a round that draws nobody adds noise
            for round_num in range(first_round, t.rounds + 1):
                if round_num == first_round:  # TFF traces its computations first: 10-30 s
                    say(f"training: round {round_num} of {t.rounds} started")
                started = time.monotonic()
                client_ids = setup.sampler.sample()
                output = train_round(state, client_ids, setup, cfg, round_num, rt, dp)
                seconds = time.monotonic() - started
                weights, evaluated = None, {}
                if due(cfg.eval.every, round_num, t.rounds, cfg.eval.final_window):
                    weights = model_weights(process, state.value)
                    evaluated = evaluation(weights)
                metrics, line = report(round_num, output, len(client_ids), evaluated, seconds)
                record(result, tracker, round_num, metrics)
                say(line)
                last = STOP_ROUND in metrics  # the target reached ends the run as its last round
                if last or due(cfg.eval.generate_every, round_num, t.rounds):
                    weights = weights or model_weights(process, state.value)
                    generate(server, weights, round_num, result, tracker, say)
                if last or due(cfg.tracking.checkpoint_every, round_num, t.rounds):
                    extra = {STOPPED_AT: round_num} if last else {}
                    tracker.save_checkpoint(
                        Checkpoint(round_num, state.value, setup.sampler.state, extra)
                    )
                if last:
                    stopped_at = round_num
                    say(f"{t.stop_at} reached at round {round_num}: training stops")
                    break
            if stopped_at is not None:
                tracker.set_tags({STOPPED_AT_TAG: str(stopped_at)})
            last_round = t.rounds if stopped_at is None else stopped_at
            tracker.set_tags(aggregation.tags(last_round))
            result.final_weights = server.weights(model_weights(process, state.value))
            tracker.log_model(server.keras_model, step=last_round)
    return result
