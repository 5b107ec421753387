"""Typed configuration: the schema behind every file in ``conf/``.

Each dataclass is one config group (``conf/<group>/*.yaml`` picks its values); ``TrainConfig`` is
the whole of ``fedlm-train``. Hydra registers these in its ConfigStore (``fedlm/cli/``), so a typo
in a key or a wrong type fails at start (:func:`check_keys`). Values are checked once, by
:func:`fedlm.checks.validate`, before TensorFlow is imported: each group's own check lives beside
its builder, with the small helpers below; every error names the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedlm.errors import ConfigError, UnknownKeyError

# The choices of model.cell and eval.role. The config groups' names are their builders'
# registries (DATASETS, PIPELINES, OPTIMIZERS, ALGORITHMS, AGGREGATORS, SAMPLERS, RUNTIMES).
CELLS = ("gru", "lstm")
EVAL_ROLES = ("test", "validation")


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


def one_of(key: str, value: object, allowed: Iterable[object]) -> None:
    """:class:`ConfigError` unless ``value`` is one of ``allowed`` (the names of a registry)."""
    if value not in allowed:
        raise ConfigError(key, value, allowed)


def at_least(key: str, value: float | None, low: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < low:
        raise ConfigError(key, value, f"a number >= {low}" + (" or null" if allow_none else ""))


def positive(key: str, value: float) -> None:
    if value is None or value <= 0:
        raise ConfigError(key, value, "a number > 0")


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
    # that starts a data.pipeline=paper run (fedlm/pretraining/).
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
