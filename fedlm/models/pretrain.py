"""Central pre-training of a character model on a corpus (by default the two Dickens books).

This plays the part of TFF's published ``dickens_rnn`` models, which the tutorial downloads and
fedlm cannot: the tutorial's preprocessing (ids -> ``seq_len + 1`` chunks -> shuffle -> batch ->
input/target), Keras ``fit`` with the masked loss and accuracy of :mod:`fedlm.models.metrics`,
evaluation on a held-out slice (the last ``validation_fraction`` of each book) and on Shakespeare
test data, and a save in the tutorial's form (``save_model(..., include_optimizer=False)``, HDF5)
that ``model.pretrained=PATH`` (or ``dickens``) loads.
"""

from __future__ import annotations

import dataclasses
import json
import re
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from fedlm import paths, vocab
from fedlm.config import PretrainConfig
from fedlm.data.clients import load_client_data
from fedlm.data.corpus import load_corpus, split_holdout
from fedlm.data.fetch import SHAKESPEARE, at_hand, corpus_files
from fedlm.data.inmemory import snippet_dataset
from fedlm.data.preprocess import TutorialPipeline, split_input_target
from fedlm.data.shakespeare_text import read_complete_works
from fedlm.errors import ConfigError, DataError
from fedlm.io import atomic_path, write_text
from fedlm.models.architectures import build_model, check_model_config
from fedlm.models.metrics import CharacterAccuracy, bits_per_char, loss_fn, perplexity
from fedlm.models.pretrained import default_pretrained_path, load_pretrained_weights

SHAKESPEARE_SOURCES = ("auto", "sqlite", "gutenberg", "synthetic", "none")
KERAS_OPTIMIZERS = ("adam", "sgd")
PIPELINES = ("tutorial", "paper")


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
    if cfg.pipeline not in PIPELINES:
        raise ConfigError("pipeline", cfg.pipeline, PIPELINES)


def id_batches(
    ids: np.ndarray, pipeline: TutorialPipeline, shuffle_seed: int | None
) -> tf.data.Dataset:
    """The tutorial's steps on one id stream: chunks of seq_len + 1 -> (shuffle) -> batches."""
    chunks = tf.data.Dataset.from_tensor_slices(ids).batch(
        pipeline.seq_len + 1, drop_remainder=True
    )
    if shuffle_seed is not None:
        chunks = chunks.shuffle(
            pipeline.shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True
        )
    return pipeline.batches(chunks).map(split_input_target)


def shakespeare_test_snippets(source: str) -> tuple[str, list[str]]:
    """(the source used, Shakespeare test snippets) for the transfer accuracy; no network.

    - ``sqlite``: the test split of ``cache_dir()/shakespeare/shakespeare.sqlite`` (what
      ``fedlm-data`` builds, in TFF's layout; rebuilt from the shared text if an older fedlm
      built it);
    - ``gutenberg``: the same test split parsed straight from the shared Complete Works by
      :func:`fedlm.data.shakespeare_text.read_complete_works` (LEAF's partition, no SQL);
    - ``synthetic``: TFF's small synthetic Shakespeare (tests);
    - ``auto``: sqlite if it exists, else gutenberg if the text is there, else none.
    """
    sqlite = paths.cache_dir() / "shakespeare" / "shakespeare.sqlite"
    shared = paths.shared_data_dir() / SHAKESPEARE.relative
    gutenberg = at_hand(shared, SHAKESPEARE.relative) or shared  # or fedlm's fetched copy
    if source == "auto":
        source = "sqlite" if sqlite.exists() else "gutenberg" if gutenberg.exists() else "none"
    if source == "none":
        return source, []
    if source == "gutenberg":
        clients = read_complete_works(gutenberg)
        return source, [s for cid in sorted(clients.test) for s in clients.test[cid]]
    import tensorflow_federated as tff  # only here: loading TFF's client data

    if source == "sqlite":
        if not sqlite.exists():
            raise DataError(f"shakespeare=sqlite: no such file {sqlite}; run `uv run fedlm-data`")
        # An existing database is read (or rebuilt, if stale) and nothing is downloaded.
        text = gutenberg if gutenberg.exists() else None
        _, test = load_client_data("shakespeare", sqlite.parent, source=text)
    else:
        test = tff.simulation.datasets.shakespeare.get_synthetic()
    # Client by client in id order (create_tf_dataset_from_all_clients shuffles the clients).
    return source, [
        x["snippets"].numpy().decode("utf-8")
        for cid in sorted(test.client_ids)
        for x in test.create_tf_dataset_for_client(cid)
    ]


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


def save_model(model: tf.keras.Model, target: Path) -> Path:
    """The tutorial's save (HDF5, no optimizer), written beside ``target`` and renamed onto it."""
    with atomic_path(target, suffix=".h5") as tmp, warnings.catch_warnings():
        # HDF5 is Keras 2's "legacy" format, and the one the tutorial's models come in.
        warnings.filterwarnings("ignore", message=".*HDF5 file.*", category=UserWarning)
        tf.keras.models.save_model(model, str(tmp), include_optimizer=False, save_format="h5")
    return target


def _pipeline(cfg: PretrainConfig) -> TutorialPipeline:
    return TutorialPipeline(
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        shuffle_buffer=cfg.shuffle_buffer,
        unknown_chars=cfg.unknown_chars,
    )


@dataclass
class CorpusBatches:
    """The corpus under one pipeline: training batches (shuffled, repeated), held-out batches,
    and how to batch Shakespeare test snippets the same way."""

    train: tf.data.Dataset
    held_out: tf.data.Dataset
    steps_per_epoch: int  # batches in one pass over the training part
    held_out_batches: int
    train_size: int  # characters (tutorial) or snippets (paper)
    held_out_size: int
    unit: str
    vocab_size: int
    ignore_id: int  # the target left out of loss and accuracy (padding)
    evaluate: Callable[[list[str]], tf.data.Dataset]


def tutorial_batches(cfg: PretrainConfig) -> CorpusBatches:
    """The tutorial's pipeline: every book's ids as one stream cut into seq_len + 1 chunks; the end
    of every book is held out."""
    corpus = load_corpus(corpus_files(cfg.corpus, cfg.corpus_urls), cfg.unknown_chars)
    train, held_out = split_holdout(corpus.ids, cfg.validation_fraction, "validation_fraction")
    train, held_out = np.asarray(train, np.int64), np.asarray(held_out, np.int64)
    pipeline = _pipeline(cfg)
    return CorpusBatches(
        train=id_batches(train, pipeline, shuffle_seed=cfg.seed).repeat(),
        held_out=id_batches(held_out, pipeline, shuffle_seed=None),
        steps_per_epoch=len(train) // (cfg.seq_len + 1) // cfg.batch_size,
        held_out_batches=len(held_out) // (cfg.seq_len + 1) // cfg.batch_size,
        train_size=len(train),
        held_out_size=len(held_out),
        unit="characters",
        vocab_size=pipeline.vocab_size,
        ignore_id=vocab.IGNORE_ID,
        evaluate=lambda snippets: pipeline.evaluate(snippet_dataset(snippets)),
    )


def paragraphs(text: str) -> list[str]:
    """A book's paragraphs (blank-line separated, line breaks inside kept): the snippets of the
    papers' pipeline, which a sequence never crosses, as it never crosses a Shakespeare line."""
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if p.strip()]


def paper_batches(cfg: PretrainConfig) -> CorpusBatches:
    """The papers' pipeline (TFF's Shakespeare baseline preprocessing, fedlm.data.paper) on the
    books' paragraphs: the 90-id vocabulary of the federated Shakespeare task, so that the model
    starts a paper-pipeline run (``model.pretrained=PATH``). The last paragraphs of every book are
    held out."""
    from fedlm.data.paper import PAD, PaperPipeline

    corpus = load_corpus(corpus_files(cfg.corpus, cfg.corpus_urls), "oov")
    train, held_out = split_holdout(
        {book: paragraphs(text) for book, text in corpus.texts.items()},
        cfg.validation_fraction,
        "validation_fraction",
    )
    pipeline = PaperPipeline(
        seq_len=cfg.seq_len, batch_size=cfg.batch_size, shuffle_buffer=cfg.shuffle_buffer
    )
    return CorpusBatches(
        train=pipeline.train(snippet_dataset(train), seed=cfg.seed).repeat(),
        held_out=pipeline.evaluate(snippet_dataset(held_out)),
        steps_per_epoch=pipeline.num_batches(train),
        held_out_batches=pipeline.num_batches(held_out),
        train_size=len(train),
        held_out_size=len(held_out),
        unit="paragraphs",
        vocab_size=pipeline.vocab_size,
        ignore_id=PAD,
        evaluate=lambda snippets: pipeline.evaluate(snippet_dataset(snippets)),
    )


def default_output(cfg: PretrainConfig) -> Path:
    """Where the model goes without ``output``: what ``model.pretrained=dickens`` loads, and for
    the paper pipeline a name of its own beside it (its vocabulary is another)."""
    path = default_pretrained_path(cfg.model.name)
    return path.with_name(f"{path.stem}_paper{path.suffix}") if cfg.pipeline == "paper" else path


def corpus_batches(cfg: PretrainConfig) -> CorpusBatches:
    return paper_batches(cfg) if cfg.pipeline == "paper" else tutorial_batches(cfg)


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
    }
    write_text(target.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return result
