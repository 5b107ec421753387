"""What pre-training trains and is evaluated on: the corpus under the tutorial's or the papers'
pipeline, a held-out slice of it (the last ``validation_fraction`` of each book), and the
Shakespeare test snippets of the transfer accuracy.

The tutorial's pipeline cuts every book's ids, as one stream, into ``seq_len + 1`` chunks,
shuffles and batches them and splits them into input and target; the papers' pipeline
(:mod:`fedlm.data.paper`) works on the books' paragraphs, as it works on Shakespeare's lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from fedlm import paths, vocab
from fedlm.config import DataConfig, PretrainConfig
from fedlm.data.clients import load_snippets, read_snippets, rebuild_if_stale
from fedlm.data.corpus import load_corpus, split_holdout
from fedlm.data.fetch import SHAKESPEARE, at_hand, corpus_files
from fedlm.data.inmemory import snippet_dataset
from fedlm.data.preprocess import TutorialPipeline, split_input_target
from fedlm.data.shakespeare_text import read_complete_works
from fedlm.errors import DataError


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


# pipeline (the names of fedlm.data.pipelines.PIPELINES) -> the corpus under it
CORPUS_BATCHES: dict[str, Callable[[PretrainConfig], CorpusBatches]] = {
    "tutorial": tutorial_batches,
    "paper": paper_batches,
}


def corpus_batches(cfg: PretrainConfig) -> CorpusBatches:
    return CORPUS_BATCHES[cfg.pipeline](cfg)


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
    if source == "sqlite":
        if not sqlite.exists():
            raise DataError(f"shakespeare=sqlite: no such file {sqlite}; run `uv run fedlm-data`")
        # An existing database is read (or rebuilt, if stale) and nothing is downloaded.
        rebuild_if_stale(sqlite, gutenberg if gutenberg.exists() else None)
        test = read_snippets(sqlite.parent, "test")
    else:
        test = load_snippets(DataConfig(name="synthetic")).test
    # Client by client in id order (create_tf_dataset_from_all_clients shuffles the clients).
    return source, [s for cid in sorted(test) for s in test[cid]]
