"""The tutorial's per-client pipeline, from config.

Exactly the tutorial's steps, in its order::

    snippet -> character ids -> unbatch -> batch(seq_len + 1, drop_remainder)
            -> shuffle(shuffle_buffer) -> batch(batch_size, drop_remainder) -> (input, target)

then ``.repeat(local_epochs)`` and ``.take(max_batches)``. With ``pad=True`` (the option the
tutorial names and skips) the last short sequence and the last short batch of a client are padded
instead of dropped: padded targets are ``IGNORE_ID`` (left out of loss and metrics) and padded
inputs are id 0, so clients with fewer than ``(seq_len + 1) * batch_size`` characters take part.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import tensorflow as tf

from fedlm import vocab
from fedlm.data import sizes
from fedlm.errors import ConfigError


def check_int(key: str, value: object, low: int, allow_none: bool = False) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``value`` is an integer >= ``low``."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        allowed = f"an integer >= {low}" + (" or null" if allow_none else "")
        raise ConfigError(key, value, allowed)


def build_lookup_table(policy: str) -> tf.lookup.StaticHashTable:
    """Character -> id table; unknown characters get -2 (drop), 86 (oov) or 0 (tutorial)."""
    default = {"drop": -2, "oov": vocab.OOV_ID, "tutorial": 0}[vocab.check_policy(policy)]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            keys=list(vocab.CHARS), values=tf.range(len(vocab.CHARS), dtype=tf.int64)
        ),
        default_value=default,
    )


def split_input_target(chunk: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The tutorial's split of a batch of (seq_len + 1)-sequences into inputs and targets."""
    input_text = tf.map_fn(lambda x: x[:-1], chunk)
    target_text = tf.map_fn(lambda x: x[1:], chunk)
    # Padding (and the reserved oov id) are never predicted; padded inputs read as id 0.
    target_text = tf.where(
        target_text == vocab.OOV_ID, tf.constant(vocab.IGNORE_ID, tf.int64), target_text
    )
    input_text = tf.where(input_text == vocab.IGNORE_ID, tf.constant(0, tf.int64), input_text)
    return input_text, target_text


@dataclass(frozen=True)
class TutorialPipeline:
    """The tutorial's preprocessing of one client's snippets into (input, target) batches."""

    seq_len: int = 100
    batch_size: int = 8
    shuffle_buffer: int = 100
    unknown_chars: str = "drop"
    pad: bool = False

    name = "tutorial"
    ignore_id = vocab.IGNORE_ID
    loss_ignore_id = vocab.IGNORE_ID  # the training loss leaves out what the metrics do

    def __post_init__(self):
        check_int("training.seq_len", self.seq_len, 1)
        check_int("training.batch_size", self.batch_size, 1)
        vocab.check_policy(self.unknown_chars)

    @property
    def vocab_size(self) -> int:
        return vocab.input_vocab_size(self.unknown_chars)

    def num_batches(self, snippets: Iterable[str]) -> int:
        """Batches one epoch of a client with these snippets yields, before any cap (no TF)."""
        return sizes.tutorial_batches(
            snippets, self.seq_len, self.batch_size, self.unknown_chars, self.pad
        )

    def to_ids(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Snippets -> a dataset of int64 character-id vectors, one per snippet."""
        table = build_lookup_table(self.unknown_chars)

        def to_ids(x):
            s = tf.reshape(x["snippets"], shape=[1])
            # One id per character, as vocab.encode and num_batches count them: the tutorial's
            # bytes_split gave a non-ASCII character one unknown id per UTF-8 byte.
            chars = tf.strings.unicode_split(s, "UTF-8").values
            ids = table.lookup(chars)
            return tf.boolean_mask(ids, ids != -2)

        return dataset.map(to_ids)

    def sequences(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Snippets -> (seq_len + 1)-long id sequences, before shuffling."""
        ids = self.to_ids(dataset).unbatch()
        if not self.pad:
            return ids.batch(self.seq_len + 1, drop_remainder=True)
        n = self.seq_len + 1
        return (
            ids.batch(n)
            .map(lambda s: tf.pad(s, [[0, n - tf.shape(s)[0]]], constant_values=vocab.IGNORE_ID))
            .map(lambda s: tf.ensure_shape(s, [n]))
        )

    def batches(self, sequences: tf.data.Dataset) -> tf.data.Dataset:
        if not self.pad:
            return sequences.batch(self.batch_size, drop_remainder=True)
        # A partial last batch is filled with all-padding sequences to a fixed shape.
        full = sequences.batch(self.batch_size)
        return full.map(
            lambda b: tf.concat(
                [
                    b,
                    tf.fill(
                        [self.batch_size - tf.shape(b)[0], self.seq_len + 1],
                        tf.constant(vocab.IGNORE_ID, tf.int64),
                    ),
                ],
                axis=0,
            )
        ).map(lambda b: tf.ensure_shape(b, [self.batch_size, self.seq_len + 1]))

    # The steps before and after the shuffle, each traced once per pipeline: building a client's
    # dataset then costs no Python tracing of its map functions, round after round.
    @functools.cached_property
    def _to_sequences(self):
        return tf.function(self.sequences)

    @functools.cached_property
    def _to_batches(self):
        return tf.function(lambda sequences: self.batches(sequences).map(split_input_target))

    def train(
        self,
        dataset: tf.data.Dataset,
        local_epochs: int = 1,
        max_batches: int | None = None,
        seed: int | None = None,
    ) -> tf.data.Dataset:
        """The tutorial's training pipeline, repeated for local epochs and capped in batches."""
        chunks = self._to_sequences(dataset).shuffle(self.shuffle_buffer, seed=seed)
        out = self._to_batches(chunks)
        if local_epochs > 1:
            out = out.repeat(local_epochs)
        if max_batches is not None:
            out = out.take(max_batches)
        return out

    def evaluate(self, dataset: tf.data.Dataset, max_batches: int | None = None) -> tf.data.Dataset:
        """Evaluation batches: the same sequences, in order, not shuffled or repeated."""
        out = self._to_batches(self._to_sequences(dataset))
        return out.take(max_batches) if max_batches is not None else out
