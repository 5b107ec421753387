"""Typed configuration: the schema behind every file in ``conf/``.

Each dataclass is one config group (``conf/<group>/*.yaml`` picks its values); ``TrainConfig`` is
the whole of ``fedlm-train``. Hydra registers these in its ConfigStore (``fedlm/cli/``), so a typo
in a key or a wrong type fails at start. Values are checked once, by :func:`validate`, before
anything is compiled; every error names the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedlm.errors import ConfigError, UnknownKeyError
from fedlm.vocab import UNKNOWN_POLICIES

PIPELINES = ("tutorial", "paper")
DATASETS = ("shakespeare", "synthetic")
CELLS = ("gru", "lstm")
OPTIMIZERS = ("sgd", "adam", "adagrad", "yogi")
ALGORITHMS = ("fedavg", "fedavg_unweighted", "fedprox")
CLIENT_WEIGHTINGS = ("num_examples", "num_tokens", "uniform")
LOOP_IMPLEMENTATIONS = ("dataset_reduce", "dataset_iterator")
SAMPLERS = ("fixed", "uniform", "with_replacement", "weighted", "round_robin", "poisson")
DP_SAMPLERS = ("uniform", "poisson")  # the samplers fedlm's privacy accounting covers
EVAL_ROLES = ("test", "validation")
RUNTIMES = ("local", "remote")
AGGREGATORS = ("mean", "dp_fixed", "dp_adaptive", "compression", "secure", "robust")
DP_AGGREGATORS = ("dp_fixed", "dp_adaptive")


@dataclass
class DataConfig:
    # shakespeare: SQL client data in cache_dir (built from `source`, else TFF's download);
    # synthetic: TFF's small in-memory Shakespeare (tests).
    name: str = "shakespeare"
    cache_dir: str = "~/.cache/fedlm/shakespeare"
    source: str | None = None
    # The address that `source` is fetched from (plain text or zip) into FEDLM_CACHE_DIR/texts/
    # when it is not there (fedlm/data/fetch.py); null: never fetched.
    source_url: str | None = None
    pipeline: str = "tutorial"
    # drop | oov | tutorial (fedlm/vocab.py); null: the pipeline's own (tutorial: drop, paper: oov)
    unknown_chars: str | None = None
    # Tutorial pipeline only: pad the last sequence and batch of a client instead of dropping
    # them; padded positions are masked out of loss and metrics.
    pad: bool = False
    # Paper pipeline only: average the training loss over the padding targets too, as the papers'
    # code does through TFF (a plain SparseCategoricalCrossentropy); false: over the other targets.
    # Accuracy leaves padding out either way.
    loss_on_padding: bool = False


@dataclass
class ModelConfig:
    name: str = "dickens_gru"
    cell: str = "gru"
    embedding_dim: int = 256
    units: int = 1024
    layers: int = 1
    # none | dickens | a local Keras model path | an http(s) URL of a Keras model
    pretrained: str = "none"
    # Unroll the recurrent layers of the training and evaluation models, whose sequence length the
    # pipeline fixes (the generation model stays variable-length): the same weights and numbers,
    # a longer first trace, and for the papers' LSTM a faster small-batch step on a CPU (README,
    # Performance). Each conf/model/ file says which it takes.
    unroll: bool = False
    # A study that starts from the pre-trained model (seed_tutorial, finetune) stops when there is
    # none, instead of going on from random weights (model.pretrained=none: random on purpose).
    pretrained_required: bool = False


@dataclass
class OptimizerConfig:
    # One schema for tff.learning.optimizers' builders; null means TFF's own default.
    name: str = "sgd"
    learning_rate: float = 1.0
    momentum: float | None = None  # sgd
    beta_1: float | None = None  # adam, yogi
    beta_2: float | None = None  # adam, yogi
    epsilon: float | None = None  # adam, yogi, adagrad
    initial_preconditioner_value: float | None = None  # adagrad, yogi


@dataclass
class AlgorithmConfig:
    name: str = "fedavg"
    proximal_strength: float = 0.0  # fedprox's mu
    client_weighting: str = "num_examples"
    # TFF's client training loop (tff.learning.LoopImplementation): dataset_iterator (faster
    # here, README: Performance) or dataset_reduce (TFF's default)
    loop_implementation: str = "dataset_iterator"


@dataclass
class AggregatorConfig:
    # How the server combines the clients' model updates (fedlm/federated/aggregators.py): mean
    # (TFF's default), dp_fixed | dp_adaptive (Gaussian noise on clipped updates, with the privacy
    # spent tracked per round), compression | secure | robust (tff.learning's aggregators). One
    # schema for all: a key that the chosen aggregator does not take stays null.
    name: str = "mean"
    noise_multiplier: float | None = None  # dp_*: noise stddev / clip norm of the sum
    clip: float | None = None  # dp_fixed: L2 norm each client's update is clipped to
    # dp_adaptive (Andrew et al. 2021); null: TFF's gaussian_adaptive defaults (0.1, 0.5, 0.2)
    initial_clip: float | None = None
    target_quantile: float | None = None  # of the update norms left unclipped
    clip_learning_rate: float | None = None
    # dp_adaptive: noise on the count of unclipped updates; null: TFF's 0.05 x clients_per_round,
    # raised to noise_multiplier where that is larger (see aggregators.clipped_count_stddev)
    clipped_count_stddev: float | None = None
    # dp_*: delta of the (epsilon, delta) reported; null: 1 / N^1.1, N the clients with data
    delta: float | None = None
    zeroing: bool | None = None  # dp_adaptive, compression, secure, robust: TFF's adaptive zeroing
    clipping: bool | None = None  # compression, secure, robust: TFF's adaptive (non-private) clip
    # Any aggregator: also log the clients' update norms each round (their mean and standard
    # deviation, tff.learning.add_debug_measurements); the aggregate itself is unchanged. What a
    # DP study sets its clip from.
    measure_norms: bool = False


@dataclass
class SamplerConfig:
    name: str = "uniform"
    client_ids: list[str] = field(default_factory=list)  # fixed


@dataclass
class RuntimeConfig:
    name: str = "local"
    # local: TFF workers on this host; several train a round's clients side by side.
    # auto: one per two usable cores (README, Performance)
    local_workers: Any = "auto"
    # TensorFlow's thread pools in each local worker (null: TensorFlow's default, the cores)
    intra_op_threads: int | None = 1
    inter_op_threads: int | None = 2
    # cap on concurrent client computations in each local TFF worker (-1: no cap)
    max_concurrent_computation_calls: int = -1
    # remote: TFF worker services (host:port), each started with `fedlm-worker`
    workers: list[str] = field(default_factory=list)
    # Seconds a worker may stay unreachable mid-run (said every 10 s) before the run ends FAILED,
    # its checkpoints intact; null: wait for it for ever. A local worker that exits ends it at once.
    give_up_after_s: float | None = 300.0


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # None: SQLite store under the results directory
    experiment_name: str = "fedlm"
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    log_model: bool = True
    # Seconds a call to a tracking server that stopped answering is retried (MLflow's retries
    # with back-off) before the run ends, its checkpoints intact.
    give_up_after_s: float = 60.0


# The metrics ``training.stop_at`` may name: a centralized (eval/) or federated (fed_eval/)
# evaluation metric, with the comparison that reaches its target. Lower is better for loss,
# perplexity and bits per character: reached once the metric is <= the value; for the others (the
# accuracies, and num_tokens, which only tests use) once it is >= the value.
STOP_METRICS = {
    "accuracy": ">=",
    "accuracy_no_eos_oov": ">=",  # the paper pipeline's
    "num_tokens": ">=",
    "loss": "<=",
    "perplexity": "<=",
    "bits_per_char": "<=",
}
STOP_PREFIXES = {"eval/": "eval.centralized", "fed_eval/": "eval.federated"}


@dataclass
class StopAtConfig:
    """A target at which training stops: after the first evaluated round whose ``metric`` reaches
    ``value`` (>= for accuracies, <= for losses: :data:`STOP_METRICS`). Only evaluated rounds
    (``eval.every``, ``eval.final_window``, the last) are checked, never round 0 (before
    training). Both null (or an empty metric): never."""

    metric: str | None = None  # eval/accuracy, eval/loss, fed_eval/accuracy, ...
    value: float | None = None

    @property
    def comparison(self) -> str:
        return STOP_METRICS[self.metric.split("/", 1)[1]]

    def reached(self, metrics: Mapping[str, float]) -> bool:
        """Whether a round's ``metrics`` reach the target (never where it was not evaluated)."""
        if not self.metric or self.metric not in metrics:
            return False
        got = metrics[self.metric]
        return got >= self.value if self.comparison == ">=" else got <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.comparison} {self.value:g}"


@dataclass
class TrainingConfig:
    rounds: int = 5  # at most: training.stop_at may end the run earlier
    clients_per_round: int = 3
    local_epochs: int = 1
    max_batches_per_client: int | None = None
    seq_len: int = 100
    batch_size: int = 8
    shuffle_buffer: int = 100
    stop_at: StopAtConfig = field(default_factory=StopAtConfig)


@dataclass
class EvalConfig:
    every: int = 1  # rounds; 0: only before the first and after the last round
    # Evaluate after every one of the last ``final_window`` rounds too (0: none), so that a
    # paper's statistic over its last rounds (Reddi et al. 2021: the last 100) averages every
    # round of the window while the rounds before it are evaluated every ``every``.
    final_window: int = 0
    centralized: bool = True
    federated: bool = False
    # test clients to evaluate on; empty: all test clients (capped by max_clients)
    client_ids: list[str] = field(default_factory=list)
    max_clients: int | None = None
    # Clients set aside for choosing hyper-parameters: never test clients (a fixed draw).
    validation_clients: int = 0
    # test: evaluate on the test clients (what a study reports); validation: on the validation
    # clients (to choose hyper-parameters without touching the test clients).
    role: str = "test"
    max_batches: int | None = None  # per client
    batch_size: int | None = None  # null: training.batch_size
    generate_every: int = 0  # rounds; 0: only before the first and after the last round
    prompt: str = "What of TensorFlow Federated, you ask? "
    generate_length: int = 200
    temperature: float = 1.0


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    client_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    server_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    # false | true (the last run in this output directory) | an MLflow run id
    resume: Any = False
    output_dir: str = "."
    experiment_scale: str = "default"


def _group_type(schema: type, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``schema`` (a config group), or None for a value."""
    hint = typing.get_type_hints(schema).get(name)
    return hint if dataclasses.is_dataclass(hint) else None


def _check_field(
    parents: list[str], name: str, schema: type | None, rest: list[str], extra: Iterable[str] = ()
) -> None:
    """Raise :class:`UnknownKeyError` unless ``name`` is a field of ``schema`` (or in ``extra``);
    ``parents`` and ``rest`` are the parts of the dotted key before and after it."""
    valid = [f.name for f in dataclasses.fields(schema)] if schema is not None else []
    valid += [name for name in sorted(extra) if name not in valid]
    if name in valid:
        return
    close = difflib.get_close_matches(name, valid, n=1)
    suggestion = ".".join([*parents, close[0], *rest]) if close else None
    key = ".".join([*parents, name, *rest])
    if parents:
        where = f"the keys of {'.'.join(parents)}"
    else:
        where = "the top-level keys and config groups" if extra else "the top-level keys"
    raise UnknownKeyError(key, where, valid, suggestion)


def check_key(dotted: str, schema: type, groups: Iterable[str] = ()) -> None:
    """Raise :class:`UnknownKeyError` unless ``dotted`` (``training.rounds``) is a key of the
    dataclass ``schema``; ``groups`` are top-level config groups (``experiment``) also allowed."""
    parts = dotted.split(".")
    node: type | None = schema
    for depth, part in enumerate(parts):
        extra = groups if depth == 0 else ()
        _check_field(parts[:depth], part, node, parts[depth + 1 :], extra)
        node = _group_type(node, part) if node is not None else None


def check_keys(config: Mapping[str, Any], schema: type, parents: tuple[str, ...] = ()) -> None:
    """Raise :class:`UnknownKeyError` for the first key of ``config`` (nested mappings, as Hydra
    composed them) that the dataclass ``schema`` does not have.

    Hydra's ``+key=value`` adds a key to a structured config without complaint, and
    ``OmegaConf.to_object`` then drops it: a misspelt ``+training.rouds=3`` would run silently.
    """
    for key, value in config.items():
        _check_field(list(parents), key, schema, [])
        group = _group_type(schema, key)
        if group is not None and isinstance(value, Mapping):
            check_keys(value, group, (*parents, key))


def check_url(key: str, value: str | None) -> None:
    """:class:`ConfigError` unless ``value`` is null or an http(s) address."""
    if value is not None and not str(value).startswith(("http://", "https://")):
        raise ConfigError(key, value, "an http:// or https:// address, or null")


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, allowed)


def _at_least(key: str, value: float | None, low: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < low:
        raise ConfigError(key, value, f"a number >= {low}" + (" or null" if allow_none else ""))


def _positive(key: str, value: float) -> None:
    if value is None or value <= 0:
        raise ConfigError(key, value, "a number > 0")


OPTIMIZER_FIELDS = {
    "sgd": ("momentum",),
    "adam": ("beta_1", "beta_2", "epsilon"),
    "adagrad": ("initial_preconditioner_value", "epsilon"),
    "yogi": ("beta_1", "beta_2", "epsilon", "initial_preconditioner_value"),
}


def validate_optimizer(opt: OptimizerConfig, key: str) -> None:
    _choice(f"{key}.name", opt.name, OPTIMIZERS)
    _positive(f"{key}.learning_rate", opt.learning_rate)
    for name in ("momentum", "beta_1", "beta_2", "epsilon", "initial_preconditioner_value"):
        value = getattr(opt, name)
        if value is None:
            continue
        if name not in OPTIMIZER_FIELDS[opt.name]:
            allowed = ", ".join(OPTIMIZER_FIELDS[opt.name]) or "none"
            raise ConfigError(f"{key}.{name}", value, f"null: {opt.name} takes only {allowed}")
        if name in ("beta_1", "beta_2", "momentum") and not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}.{name}", value, "a number in [0, 1)")
        if name == "epsilon":
            _positive(f"{key}.{name}", value)
        _at_least(f"{key}.{name}", value, 0.0)


AGGREGATOR_FIELDS = {
    "mean": (),
    "dp_fixed": ("noise_multiplier", "clip", "delta"),
    "dp_adaptive": (
        "noise_multiplier",
        "initial_clip",
        "target_quantile",
        "clip_learning_rate",
        "clipped_count_stddev",
        "delta",
        "zeroing",
    ),
    "compression": ("zeroing", "clipping"),
    "secure": ("zeroing", "clipping"),
    "robust": ("zeroing", "clipping"),
}
ADAPTIVE_CLIP_FIELDS = ("initial_clip", "target_quantile", "clip_learning_rate")
# What TFF 0.87's runtimes execute: secure aggregation's tff.federated_secure_sum_bitwidth fails in
# the local C++ runtime ("Cannot embed a federated value"); only TFF's test context
# (tff.backends.test), which replaces the secure sum by a plain one, runs it.
RUNNABLE_AGGREGATORS = tuple(a for a in AGGREGATORS if a != "secure")


def validate_aggregator(cfg: TrainConfig) -> None:
    """The aggregator's keys, and the combinations TFF can build and fedlm can account for."""
    agg = cfg.aggregator
    _choice("aggregator.name", agg.name, AGGREGATORS)
    takes = AGGREGATOR_FIELDS[agg.name]
    every = ("name", "measure_norms")  # keys every aggregator takes
    for name in (f.name for f in dataclasses.fields(AggregatorConfig) if f.name not in every):
        value = getattr(agg, name)
        if value is not None and name not in takes:
            allowed = f"only {', '.join(takes)}" if takes else "no other key"
            raise ConfigError(
                f"aggregator.{name}",
                value,
                f"null: aggregator.name={agg.name!r} takes {allowed} (aggregator=<name> picks one)",
            )
    if not isinstance(agg.measure_norms, bool):
        raise ConfigError("aggregator.measure_norms", agg.measure_norms, "true or false")
    if agg.name == "secure":
        raise ConfigError(
            "aggregator.name",
            agg.name,
            f"one of {', '.join(RUNNABLE_AGGREGATORS)}: TFF 0.87's local C++ runtime cannot run "
            "tff.learning.secure_aggregator (its tff.federated_secure_sum_bitwidth fails with "
            "'Cannot embed a federated value'); only TFF's test context, which replaces the secure "
            "sum with a plain one, runs it",
        )
    if agg.name not in DP_AGGREGATORS:
        return
    if agg.noise_multiplier is None:
        raise ConfigError(
            "aggregator.noise_multiplier", None, "a number >= 0 (noise stddev / clip norm)"
        )
    z = agg.noise_multiplier
    _at_least("aggregator.noise_multiplier", z, 0.0)
    if agg.name == "dp_fixed":
        _positive("aggregator.clip", agg.clip)
    if agg.initial_clip is not None:
        _positive("aggregator.initial_clip", agg.initial_clip)
    if agg.target_quantile is not None and not 0.0 <= agg.target_quantile <= 1.0:
        raise ConfigError("aggregator.target_quantile", agg.target_quantile, "a number in [0, 1]")
    _at_least("aggregator.clip_learning_rate", agg.clip_learning_rate, 0.0, allow_none=True)
    _at_least("aggregator.clipped_count_stddev", agg.clipped_count_stddev, 0.0, allow_none=True)
    if agg.delta is not None and not 0.0 < agg.delta < 1.0:
        raise ConfigError("aggregator.delta", agg.delta, "a number in (0, 1), or null")
    if cfg.algorithm.name != "fedavg_unweighted" and cfg.algorithm.client_weighting != "uniform":
        raise ConfigError(
            "algorithm.client_weighting",
            cfg.algorithm.client_weighting,
            f"'uniform' with aggregator.name={agg.name!r} (TFF's DP aggregators average the "
            "clients unweighted), or algorithm=fedavg_unweighted",
        )
    if cfg.sampler.name not in DP_SAMPLERS:
        raise ConfigError(
            "sampler.name",
            cfg.sampler.name,
            f"'uniform' or 'poisson' with aggregator.name={agg.name!r}: the privacy accountant "
            "covers clients_per_round clients drawn uniformly without replacement (uniform, "
            "replace-one) and each client drawn with probability clients_per_round / N "
            "(poisson, add-or-remove)",
        )
    if agg.name != "dp_adaptive" or z == 0:
        return
    clients = cfg.training.clients_per_round
    if agg.zeroing:
        for name in (*ADAPTIVE_CLIP_FIELDS, "clipped_count_stddev"):
            if getattr(agg, name) is not None:
                raise ConfigError(
                    f"aggregator.{name}",
                    getattr(agg, name),
                    "null with aggregator.zeroing=true (tff.learning.dp_aggregator, the one with "
                    "zeroing, keeps TFF's adaptive-clipping defaults); aggregator.zeroing=false "
                    "takes them",
                )
        if z >= 2 * 0.05 * clients:
            raise ConfigError(
                "aggregator.zeroing",
                True,
                f"false for noise_multiplier={z} with {clients} clients per round: "
                "tff.learning.dp_aggregator's clipped-count noise, 0.05 x clients_per_round = "
                f"{0.05 * clients:g}, must exceed noise_multiplier / 2",
            )
    elif agg.clipped_count_stddev is not None and z >= 2 * agg.clipped_count_stddev:
        raise ConfigError(
            "aggregator.clipped_count_stddev",
            agg.clipped_count_stddev,
            f"a number > noise_multiplier / 2 = {z / 2:g}, or null: TFF's adaptive clipping "
            f"cannot reach noise_multiplier={z} otherwise",
        )


def validate_stop_at(cfg: TrainConfig) -> None:
    """``training.stop_at``: both null, or an evaluation metric the run logs and a number."""
    stop = cfg.training.stop_at
    if not stop.metric and stop.value is None:
        return
    prefix = next((p for p in STOP_PREFIXES if str(stop.metric).startswith(p)), None)
    name = str(stop.metric)[len(prefix) :] if prefix else None
    if name not in STOP_METRICS or (name == "accuracy_no_eos_oov" and cfg.data.pipeline != "paper"):
        allowed = [f"eval/{m}" for m in STOP_METRICS if m != "accuracy_no_eos_oov"]
        raise ConfigError(
            "training.stop_at.metric",
            stop.metric,
            f"one of {', '.join(allowed)} (eval/accuracy_no_eos_oov with data.pipeline=paper; "
            "fed_eval/ for the federated evaluation), or null with training.stop_at.value=null: "
            "never stop early. Reached at >= value for accuracies and num_tokens, at <= value "
            "for loss, perplexity and bits_per_char",
        )
    switch = STOP_PREFIXES[prefix]
    if not getattr(cfg.eval, switch.split(".")[1]):
        raise ConfigError(
            "training.stop_at.metric",
            stop.metric,
            f"a metric the run logs, and it logs no {prefix} metrics with {switch}=false",
        )
    if not isinstance(stop.value, int | float) or isinstance(stop.value, bool):
        raise ConfigError(
            "training.stop_at.value",
            stop.value,
            f"a number: training.stop_at.metric={stop.metric} stops the run once it is "
            f"{STOP_METRICS[name]} the value",
        )
    if "accuracy" in name and not 0.0 <= stop.value <= 1.0:
        raise ConfigError("training.stop_at.value", stop.value, f"a number in [0, 1] for {name}")


def validate(cfg: TrainConfig) -> None:
    """Check every value that does not depend on the data; raise :class:`ConfigError`."""
    _choice("data.name", cfg.data.name, DATASETS)
    _choice("data.pipeline", cfg.data.pipeline, PIPELINES)
    check_url("data.source_url", cfg.data.source_url)
    if cfg.data.unknown_chars is not None:
        _choice("data.unknown_chars", cfg.data.unknown_chars, UNKNOWN_POLICIES)
    _choice("model.cell", cfg.model.cell, CELLS)
    for key in ("embedding_dim", "units", "layers"):
        _at_least(f"model.{key}", getattr(cfg.model, key), 1)
    validate_optimizer(cfg.client_optimizer, "client_optimizer")
    validate_optimizer(cfg.server_optimizer, "server_optimizer")
    _choice("algorithm.name", cfg.algorithm.name, ALGORITHMS)
    _choice("algorithm.client_weighting", cfg.algorithm.client_weighting, CLIENT_WEIGHTINGS)
    _at_least("algorithm.proximal_strength", cfg.algorithm.proximal_strength, 0.0)
    _choice(
        "algorithm.loop_implementation", cfg.algorithm.loop_implementation, LOOP_IMPLEMENTATIONS
    )
    _choice("sampler.name", cfg.sampler.name, SAMPLERS)
    if cfg.sampler.name == "fixed" and not cfg.sampler.client_ids:
        raise ConfigError("sampler.client_ids", [], "a non-empty list of client ids for 'fixed'")
    _choice("runtime.name", cfg.runtime.name, RUNTIMES)
    local_workers = cfg.runtime.local_workers
    if local_workers != "auto" and (
        not isinstance(local_workers, int) or isinstance(local_workers, bool) or local_workers < 1
    ):
        raise ConfigError("runtime.local_workers", local_workers, "'auto' or an integer >= 1")
    _at_least("runtime.intra_op_threads", cfg.runtime.intra_op_threads, 1, allow_none=True)
    _at_least("runtime.inter_op_threads", cfg.runtime.inter_op_threads, 1, allow_none=True)
    _at_least("runtime.give_up_after_s", cfg.runtime.give_up_after_s, 0, allow_none=True)
    if cfg.runtime.name == "remote" and not cfg.runtime.workers:
        raise ConfigError("runtime.workers", [], "a non-empty list of host:port for 'remote'")
    t = cfg.training
    _at_least("training.rounds", t.rounds, 1)
    _at_least("training.clients_per_round", t.clients_per_round, 1)
    _at_least("training.local_epochs", t.local_epochs, 1)
    _at_least("training.max_batches_per_client", t.max_batches_per_client, 1, allow_none=True)
    _at_least("training.seq_len", t.seq_len, 1)
    _at_least("training.batch_size", t.batch_size, 1)
    _at_least("training.shuffle_buffer", t.shuffle_buffer, 1)
    validate_stop_at(cfg)
    e = cfg.eval
    _at_least("eval.every", e.every, 0)
    _at_least("eval.final_window", e.final_window, 0)
    if e.final_window > t.rounds:
        raise ConfigError(
            "eval.final_window", e.final_window, f"at most training.rounds ({t.rounds}), or 0"
        )
    _at_least("eval.generate_every", e.generate_every, 0)
    _at_least("eval.generate_length", e.generate_length, 0)
    _at_least("eval.max_clients", e.max_clients, 1, allow_none=True)
    _at_least("eval.validation_clients", e.validation_clients, 0)
    _choice("eval.role", e.role, EVAL_ROLES)
    if e.role == "validation" and e.validation_clients < 1:
        raise ConfigError(
            "eval.validation_clients", e.validation_clients, "at least 1 with eval.role=validation"
        )
    _at_least("eval.max_batches", e.max_batches, 1, allow_none=True)
    _at_least("eval.batch_size", e.batch_size, 1, allow_none=True)
    _positive("eval.temperature", e.temperature)
    _at_least("tracking.checkpoint_every", cfg.tracking.checkpoint_every, 0)
    _at_least("tracking.keep_checkpoints", cfg.tracking.keep_checkpoints, 1)
    _at_least("tracking.give_up_after_s", cfg.tracking.give_up_after_s, 0)
    if not cfg.tracking.enabled and cfg.tracking.uri not in (None, ""):
        raise ConfigError(
            "tracking.uri",
            cfg.tracking.uri,
            "null with tracking.enabled=false (tracking=none logs nothing anywhere; "
            "tracking=mlflow logs to the URI)",
        )
    validate_aggregator(cfg)


@dataclass
class PretrainConfig:
    """``fedlm-pretrain``: central training of a character model on a corpus (the Dickens books)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    # Text files; a relative path is read under fedlm.paths.shared_data_dir().
    corpus: list[str] = field(
        default_factory=lambda: [
            "dickens/a_tale_of_two_cities.txt",
            "dickens/a_christmas_carol.txt",
        ]
    )
    # Book name (a corpus file's stem) -> the address it is fetched from into
    # FEDLM_CACHE_DIR/texts/ when it is not there (fedlm/data/fetch.py); a book without one is not.
    corpus_urls: dict[str, str] = field(default_factory=dict)
    unknown_chars: str = "drop"  # tutorial pipeline (the paper pipeline maps them to its oov id)
    # tutorial: the books as one character stream, the tutorial's vocabulary; paper: the books'
    # paragraphs through the papers' pipeline (TFF's Shakespeare baseline, 90 ids), for a model
    # that starts a data.pipeline=paper run (fedlm/models/pretrain.py).
    pipeline: str = "tutorial"
    validation_fraction: float = 0.1  # the last part of each book is held out
    epochs: int = 1
    steps_per_epoch: int | None = None  # cap on batches per epoch; null: the whole corpus
    seq_len: int = 100
    batch_size: int = 8
    shuffle_buffer: int = 10000
    optimizer: str = "adam"  # adam | sgd (Keras optimizers: this is central training)
    learning_rate: float = 1e-3
    eval_batches: int | None = None  # cap on validation and Shakespeare batches
    # Shakespeare test data for the transfer accuracy: auto | sqlite | gutenberg | synthetic | none
    shakespeare: str = "auto"
    log_every: int = 50  # steps between progress lines
    # Stop early, keeping the weights of the best validation loss, after this many epochs
    # without improvement (null: never).
    patience: int | None = None
    time_limit_minutes: float | None = None  # stop training (then evaluate and save) after this
    seed: int = 0
    # null: cache_dir()/pretrained/<model.name>.h5 (what model.pretrained=dickens loads), and
    # <model.name>_paper.h5 for the paper pipeline
    output: str | None = None


@dataclass
class GenerateConfig:
    """``fedlm-generate``: sample text from a saved model with a batch-1 stateful copy of it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: str = "What of TensorFlow Federated, you ask? "
    length: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    vocab_size: int | None = None  # null: the saved model's embedding rows
