"""What ``fedlm-train`` checks before it imports TensorFlow, so that a bad config is reported in
about a second instead of after 10-20 s of imports (or minutes into a run).

:func:`validate` checks every value on its own, each config group by its own check beside its
builder (``data.name``: fedlm/data/clients.py; ``data.pipeline``: fedlm/data/pipelines.py;
optimizers and algorithm: fedlm/federated/process.py; aggregator: aggregators.py; sampler:
samplers.py; runtime: runtime.py), the rest here; the builders then take what it passed.
:func:`check_data` checks the values against the files and the data: a ``model.pretrained``
path, ``data.cache_dir`` and ``data.source`` (fetched from ``data.source_url`` when it is not at
hand and the database is not built yet), and, when the federated Shakespeare database is already
built, that enough training clients have a full batch at this ``seq_len`` and batch size for the
sampler (``training.clients_per_round``, ``sampler.client_ids``). :func:`fedlm.experiment.run`
checks the data again where it uses them (it calls :func:`validate` too), so a library caller is
never without them.
"""

from __future__ import annotations

from pathlib import Path

from fedlm import paths
from fedlm.config import (
    CELLS,
    EVAL_ROLES,
    STOP_METRICS,
    STOP_PREFIXES,
    ModelConfig,
    TrainConfig,
    at_least,
    check_url,
    one_of,
    positive,
)
from fedlm.data.build import check_cache_dir, database_path
from fedlm.data.clients import DATASETS, data_source, read_snippets
from fedlm.data.fetch import complete_works_path
from fedlm.data.pipelines import PIPELINES, BatchCounter, check_pipeline
from fedlm.data.sizes import eligible_clients
from fedlm.errors import ConfigError, ModelError
from fedlm.federated.aggregators import check_aggregator
from fedlm.federated.process import ALGORITHMS, check_process
from fedlm.federated.runtime import check_runtime
from fedlm.federated.samplers import build_sampler, check_sampler
from fedlm.vocab import UNKNOWN_POLICIES


def validate(cfg: TrainConfig) -> None:
    """Check every value that does not depend on the data; raise :class:`ConfigError`."""
    one_of("data.name", cfg.data.name, DATASETS)
    one_of("data.pipeline", cfg.data.pipeline, PIPELINES)
    check_url("data.source_url", cfg.data.source_url)
    if cfg.data.unknown_chars is not None:
        one_of("data.unknown_chars", cfg.data.unknown_chars, UNKNOWN_POLICIES)
    check_pipeline(cfg.data)
    one_of("model.cell", cfg.model.cell, CELLS)
    for key in ("embedding_dim", "units", "layers"):
        at_least(f"model.{key}", getattr(cfg.model, key), 1)
    check_process(cfg)
    check_sampler(cfg.sampler)
    check_runtime(cfg)
    check_training(cfg)
    check_stop_at(cfg)
    check_eval(cfg)
    check_tracking(cfg)
    check_aggregator(cfg, ALGORITHMS[cfg.algorithm.name].weighted)


def check_training(cfg: TrainConfig) -> None:
    t = cfg.training
    at_least("training.rounds", t.rounds, 1)
    at_least("training.clients_per_round", t.clients_per_round, 1)
    at_least("training.local_epochs", t.local_epochs, 1)
    at_least("training.max_batches_per_client", t.max_batches_per_client, 1, allow_none=True)
    at_least("training.seq_len", t.seq_len, 1)
    at_least("training.batch_size", t.batch_size, 1)
    at_least("training.shuffle_buffer", t.shuffle_buffer, 1)


def check_eval(cfg: TrainConfig) -> None:
    e = cfg.eval
    at_least("eval.every", e.every, 0)
    at_least("eval.final_window", e.final_window, 0)
    if e.final_window > cfg.training.rounds:
        raise ConfigError(
            "eval.final_window",
            e.final_window,
            f"at most training.rounds ({cfg.training.rounds}), or 0",
        )
    at_least("eval.generate_every", e.generate_every, 0)
    at_least("eval.generate_length", e.generate_length, 0)
    at_least("eval.max_clients", e.max_clients, 1, allow_none=True)
    at_least("eval.validation_clients", e.validation_clients, 0)
    one_of("eval.role", e.role, EVAL_ROLES)
    if e.role == "validation" and e.validation_clients < 1:
        raise ConfigError(
            "eval.validation_clients", e.validation_clients, "at least 1 with eval.role=validation"
        )
    at_least("eval.max_batches", e.max_batches, 1, allow_none=True)
    at_least("eval.batch_size", e.batch_size, 1, allow_none=True)
    positive("eval.temperature", e.temperature)


def check_tracking(cfg: TrainConfig) -> None:
    at_least("tracking.checkpoint_every", cfg.tracking.checkpoint_every, 0)
    at_least("tracking.keep_checkpoints", cfg.tracking.keep_checkpoints, 1)
    at_least("tracking.give_up_after_s", cfg.tracking.give_up_after_s, 0)
    if not cfg.tracking.enabled and cfg.tracking.uri not in (None, ""):
        raise ConfigError(
            "tracking.uri",
            cfg.tracking.uri,
            "null with tracking.enabled=false (tracking=none logs nothing anywhere; "
            "tracking=mlflow logs to the URI)",
        )


def check_stop_at(cfg: TrainConfig) -> None:
    """``training.stop_at``: both null, or an evaluation metric the run logs and a number."""
    stop = cfg.training.stop_at
    if not stop.metric and stop.value is None:
        return
    prefix = next((p for p in STOP_PREFIXES if str(stop.metric).startswith(p)), None)
    name = str(stop.metric)[len(prefix) :] if prefix else None
    # The metrics that only some pipelines log, with one that does.
    logged_by = {m: pipeline for pipeline, kind in PIPELINES.items() for m in kind.metrics}
    logged = name in STOP_METRICS and (
        name not in logged_by or name in PIPELINES[cfg.data.pipeline].metrics
    )
    if not logged:
        allowed = [f"eval/{m}" for m in STOP_METRICS if m not in logged_by]
        only = "; ".join(f"eval/{m} with data.pipeline={p}" for m, p in logged_by.items())
        raise ConfigError(
            "training.stop_at.metric",
            stop.metric,
            f"one of {', '.join(allowed)} ({only}; "
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


def check_pretrained(model: ModelConfig, pipeline: str = "tutorial") -> None:
    """Raise :class:`ModelError` for a ``model.pretrained`` path that is not there (``none``,
    ``dickens`` and URLs are looked up when the run loads the weights). A path where
    ``fedlm-pretrain`` saves (fedlm's cache) names the command that makes it."""
    spec = str(model.pretrained or "").strip()
    if spec.lower() in ("", "none", "null", "dickens") or spec.startswith(("http://", "https://")):
        return
    path = Path(spec).expanduser()
    if path.exists():
        return
    if path.parent == paths.cache_dir() / "pretrained":
        pipeline_arg = PIPELINES[pipeline].pretrain_args
        raise ModelError(
            f"model.pretrained={spec!r}: this run starts from a model pre-trained on the Dickens "
            f"books, and there is none yet: make it with `uv run fedlm-pretrain "
            f"model={model.name}{pipeline_arg}` (the study's README gives its settings and time), "
            "or set model.pretrained=none to start from random weights"
        )
    raise ModelError(
        f"model.pretrained={spec!r}: no such file or directory ({path}); expected none, "
        "dickens, an http(s) URL or the path of a saved Keras model"
    )


def check_data(cfg: TrainConfig) -> None:
    """Raise :class:`fedlm.errors.ConfigError` or :class:`fedlm.errors.DataError` for what in
    ``cfg`` does not fit the data; pure Python (sqlite3), about a second for the full dataset."""
    data, t = cfg.data, cfg.training
    check_pretrained(cfg.model, data.pipeline)
    if not data_source(data.name).in_cache_dir:
        return  # TFF's synthetic data: three clients, checked when the run loads them
    database = database_path(check_cache_dir(data.cache_dir))
    if not database.is_file():
        if data.source is not None:
            # Fetched now if it is not at hand (pure Python): a failed download is one line
            # before TensorFlow is imported, and a missing text with no address is refused.
            complete_works_path(data.source, data.source_url)
        return  # built (or downloaded by TFF) when the run starts, and checked then
    snippets = read_snippets(data.cache_dir, "train")
    counter = BatchCounter(data.pipeline, t.seq_len, t.batch_size, data.unknown_chars, data.pad)
    build_sampler(
        cfg.sampler.name,
        eligible_clients(counter, snippets),
        t.clients_per_round,
        cfg.seed,
        fixed_client_ids=cfg.sampler.client_ids,
        all_client_ids=list(snippets),
    )
