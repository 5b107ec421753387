"""Central pre-training of a character model on a corpus (by default the two Dickens books).

This plays the part of TFF's published ``dickens_rnn`` models, which the tutorial downloads and
fedlm cannot: the tutorial's preprocessing (ids -> ``seq_len + 1`` chunks -> shuffle -> batch ->
input/target), Keras ``fit`` with the masked loss and accuracy of :mod:`fedlm.models.metrics`,
evaluation on a held-out slice (the last ``validation_fraction`` of each book) and on Shakespeare
test data (:mod:`fedlm.pretraining.batches`), and a save in the tutorial's form
(:func:`fedlm.models.pretrained.save_model`, HDF5) that ``model.pretrained=PATH`` (or ``dickens``)
loads.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from fedlm import paths, vocab
from fedlm.config import PretrainConfig
from fedlm.data.clients import build_stamp
from fedlm.data.pipelines import PIPELINES
from fedlm.data.shakespeare_text import PARSER_VERSION
from fedlm.errors import ConfigError, DataError
from fedlm.io import write_text
from fedlm.models.architectures import build_model, check_model_config
from fedlm.models.metrics import CharacterAccuracy, bits_per_char, loss_fn, perplexity
from fedlm.models.pretrained import default_pretrained_path, load_pretrained_weights, save_model
from fedlm.pretraining.batches import (
    CORPUS_BATCHES,
    CorpusBatches,
    corpus_batches,
    shakespeare_test_snippets,
)
from fedlm.tracking.run_info import git_state

SHAKESPEARE_SOURCES = ("auto", "sqlite", "gutenberg", "synthetic", "none")
KERAS_OPTIMIZERS = ("adam", "sgd")


@dataclass
class PretrainResult:
    path: Path  # the saved Keras model
    metrics: dict[str, float]  # train_*, validation_*, shakespeare_* (loss, accuracy, ...)
    vocab_size: int
    shakespeare_source: str  # which Shakespeare test data gave shakespeare_* ("none": not measured)
    train_steps: int
    epochs_run: int
    wall_seconds: float
    cpu_seconds: float


def validate_pretrain(cfg: PretrainConfig) -> None:
    check_model_config(cfg.model)
    vocab.check_policy(cfg.unknown_chars, "unknown_chars")
    if not cfg.corpus:
        raise ConfigError("corpus", cfg.corpus, "a non-empty list of text files")
    if not 0.0 < cfg.validation_fraction < 1.0:
        raise ConfigError("validation_fraction", cfg.validation_fraction, "a number in (0, 1)")
    for key in ("epochs", "seq_len", "batch_size", "shuffle_buffer", "log_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(key, getattr(cfg, key), "an integer >= 1")
    for key in ("steps_per_epoch", "eval_batches", "patience"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise ConfigError(key, getattr(cfg, key), "an integer >= 1 or null")
    if cfg.optimizer not in KERAS_OPTIMIZERS:
        raise ConfigError("optimizer", cfg.optimizer, KERAS_OPTIMIZERS)
    if cfg.learning_rate <= 0:
        raise ConfigError("learning_rate", cfg.learning_rate, "a number > 0")
    if cfg.time_limit_minutes is not None and cfg.time_limit_minutes <= 0:
        raise ConfigError("time_limit_minutes", cfg.time_limit_minutes, "a number > 0 or null")
    if cfg.shakespeare not in SHAKESPEARE_SOURCES:
        raise ConfigError("shakespeare", cfg.shakespeare, SHAKESPEARE_SOURCES)
    if cfg.pipeline not in CORPUS_BATCHES:
        raise ConfigError("pipeline", cfg.pipeline, CORPUS_BATCHES)


class ProgressLine(tf.keras.callbacks.Callback):
    """One line every ``every`` training steps: step, epoch, loss, accuracy, steps per second."""

    def __init__(self, every: int, steps_per_epoch: int, epochs: int, stream=None):
        super().__init__()
        self.every, self.steps_per_epoch, self.epochs = every, steps_per_epoch, epochs
        self.stream = stream or sys.stdout
        self.step, self.start = 0, time.perf_counter()

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0 or batch + 1 == self.steps_per_epoch:
            rate = self.step / (time.perf_counter() - self.start)
            total = self.steps_per_epoch * self.epochs
            self._print(
                f"step {self.step}/{total} "
                f"(epoch {(self.step - 1) // self.steps_per_epoch + 1}/{self.epochs}) "
                f"loss {logs['loss']:.4f} accuracy {logs['accuracy']:.4f} {rate:.2f} steps/s"
            )

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: round(float(v), 4) for k, v in (logs or {}).items()}
        self._print(f"epoch {epoch + 1}/{self.epochs} done: {shown}")


class TimeLimit(tf.keras.callbacks.Callback):
    """Stop training after ``minutes`` of wall time (checked after every step)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.deadline = time.perf_counter() + 60.0 * minutes

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() > self.deadline and not self.model.stop_training:
            print("time limit reached: stopping training", flush=True)
            self.model.stop_training = True


def _callbacks(cfg: PretrainConfig, steps: int) -> list[tf.keras.callbacks.Callback]:
    callbacks = [ProgressLine(cfg.log_every, steps, cfg.epochs)]
    if cfg.patience is not None:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=True, verbose=1
            )
        )
    if cfg.time_limit_minutes is not None:
        callbacks.append(TimeLimit(cfg.time_limit_minutes))
    return callbacks


def _optimizer(cfg: PretrainConfig) -> tf.keras.optimizers.Optimizer:
    if cfg.optimizer == "adam":
        return tf.keras.optimizers.Adam(cfg.learning_rate)
    return tf.keras.optimizers.SGD(cfg.learning_rate)


def _evaluate(model: tf.keras.Model, batches: tf.data.Dataset, prefix: str) -> dict[str, float]:
    values = model.evaluate(batches, verbose=0, return_dict=True)
    out = {f"{prefix}_loss": float(values["loss"]), f"{prefix}_accuracy": float(values["accuracy"])}
    out[f"{prefix}_perplexity"] = perplexity(out[f"{prefix}_loss"])
    out[f"{prefix}_bits_per_char"] = bits_per_char(out[f"{prefix}_loss"])
    return out


def default_output(cfg: PretrainConfig) -> Path:
    """Where the model goes without ``output``: what ``model.pretrained=dickens`` loads, and for
    the paper pipeline a name of its own beside it (its vocabulary is another)."""
    path = default_pretrained_path(cfg.model.name)
    return path.with_name(f"{path.stem}{PIPELINES[cfg.pipeline].pretrained_suffix}{path.suffix}")


def compile_model(model: tf.keras.Model, cfg: PretrainConfig, ignore_id: int) -> tf.keras.Model:
    model.compile(
        optimizer=_optimizer(cfg),
        loss=loss_fn(ignore_id),
        metrics=[CharacterAccuracy(ignore_ids=[ignore_id])],
    )
    return model


def _capped(batches: tf.data.Dataset, cfg: PretrainConfig) -> tf.data.Dataset:
    return batches if cfg.eval_batches is None else batches.take(cfg.eval_batches)


def evaluate_model(
    model: tf.keras.Model, cfg: PretrainConfig, data: CorpusBatches
) -> tuple[dict[str, float], str]:
    """validation_* metrics on the held-out part and shakespeare_* metrics on ``cfg.shakespeare``
    (the Shakespeare source used is returned too) of a model compiled by :func:`compile_model`."""
    metrics = _evaluate(model, _capped(data.held_out, cfg), "validation")
    source, snippets = shakespeare_test_snippets(cfg.shakespeare)
    if snippets:
        metrics.update(_evaluate(model, _capped(data.evaluate(snippets), cfg), "shakespeare"))
    return metrics, source


def evaluate_saved(cfg: PretrainConfig) -> tuple[dict[str, float], str]:
    """:func:`evaluate_model` of the saved model ``cfg.model.pretrained``, without training."""
    validate_pretrain(cfg)
    data = corpus_batches(cfg)
    weights = load_pretrained_weights(cfg.model.pretrained, cfg.model, data.vocab_size)
    if weights is None:
        raise ConfigError("model.pretrained", cfg.model.pretrained, "a saved model to evaluate")
    model = compile_model(build_model(cfg.model, data.vocab_size), cfg, data.ignore_id)
    model.set_weights(weights)
    return evaluate_model(model, cfg, data)


def _build_of(source: str) -> dict[str, str]:
    """The parser version and source SHA-256 of the Shakespeare build that gave shakespeare_*
    (``sqlite``: the built database's stamp; ``gutenberg``: this fedlm's parser); else empty."""
    if source == "sqlite":
        stamp = build_stamp("shakespeare", paths.cache_dir() / "shakespeare") or {}
        return {k: stamp[k] for k in ("parser_version", "source_sha256") if k in stamp}
    if source == "gutenberg":
        return {"parser_version": str(PARSER_VERSION)}
    return {}


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Train ``cfg.model`` on ``cfg.corpus``, evaluate it, save it; return metrics and the path."""
    validate_pretrain(cfg)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    tf.keras.utils.set_random_seed(cfg.seed)
    data = corpus_batches(cfg)
    if data.steps_per_epoch < 1 or data.held_out_batches < 1:
        raise DataError(
            f"corpus {cfg.corpus} is too short for one batch of {cfg.batch_size} x "
            f"{cfg.seq_len + 1} characters in training ({data.train_size} {data.unit}) and "
            f"validation ({data.held_out_size} {data.unit})"
        )
    steps = min(data.steps_per_epoch, cfg.steps_per_epoch or data.steps_per_epoch)

    vocab_size = data.vocab_size
    model = compile_model(build_model(cfg.model, vocab_size), cfg, data.ignore_id)
    initial = load_pretrained_weights(cfg.model.pretrained, cfg.model, vocab_size)
    if initial is not None:
        model.set_weights(initial)
    print(
        f"pre-training {cfg.model.name} ({model.count_params():,} parameters, vocabulary "
        f"{vocab_size}, {cfg.pipeline} pipeline) on {data.train_size:,} {data.unit}, "
        f"validating on {data.held_out_size:,}: {cfg.epochs} epoch(s) x {steps} steps of "
        f"{cfg.batch_size} x {cfg.seq_len}",
        flush=True,
    )
    callbacks = _callbacks(cfg, steps)
    history = model.fit(
        data.train.prefetch(2),
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        validation_data=_capped(data.held_out, cfg),
        verbose=0,
        callbacks=callbacks,
    )
    # The training metrics of the epoch whose weights are kept (early stopping restores the best).
    stopped = [c for c in callbacks if isinstance(c, tf.keras.callbacks.EarlyStopping)]
    kept = stopped[0].best_epoch if stopped and stopped[0].stopped_epoch > 0 else -1
    metrics = {
        "train_loss": float(history.history["loss"][kept]),
        "train_accuracy": float(history.history["accuracy"][kept]),
    }
    evaluated, source = evaluate_model(model, cfg, data)
    metrics.update(evaluated)
    target = Path(cfg.output).expanduser() if cfg.output else default_output(cfg)
    save_model(model, target)
    result = PretrainResult(
        path=target,
        metrics=metrics,
        vocab_size=vocab_size,
        shakespeare_source=source,
        train_steps=int(model.optimizer.iterations.numpy()),
        epochs_run=len(history.history["loss"]),
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=time.process_time() - cpu0,
    )
    record = {
        **dataclasses.asdict(result),
        "path": str(target),
        "config": dataclasses.asdict(cfg),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # The per-epoch history behind the figures, the epoch kept (1-based) and what produced
        # them: a committed copy of this file is the model's source (experiments/SOURCES.md).
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "kept_epoch": (kept if kept >= 0 else len(history.history["loss"]) + kept) + 1,
        "git": git_state(),
        "shakespeare_build": _build_of(source),
    }
    write_text(target.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return result
