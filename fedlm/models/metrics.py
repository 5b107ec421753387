"""Loss and metrics of next-character prediction.

- ``CharacterAccuracy``: the tutorial's flattened character accuracy (the fraction of positions
  whose most likely next character is the right one), leaving out targets in ``ignore_ids``. With
  nothing to ignore it is the tutorial's ``FlattenedCategoricalAccuracy``; with ``ignore_ids=[0]``
  it is TFF's baseline ``MaskedCategoricalAccuracy(masked_tokens=[pad])``.
- ``NumTokens``: how many targets count (not ignored); the papers weight clients by it.
- ``loss_fn``: sparse categorical cross-entropy over logits, masked the same way (training); a
  batch with no target that counts has loss 0, not NaN (:class:`MaskedCrossEntropy`).
- ``TokenLoss``: the same cross-entropy as a mean over characters (evaluation).
- ``perplexity`` and ``bits_per_char`` derive from the mean loss (nats per character).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf


def _flat_targets(y_true: tf.Tensor, ignore_ids: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
    y_true = tf.reshape(tf.cast(y_true, tf.int64), [-1])
    keep = tf.ones_like(y_true, dtype=tf.bool)
    for token in ignore_ids:
        keep = tf.logical_and(keep, tf.not_equal(y_true, token))
    return y_true, keep


def _flat_predictions(y_true: tf.Tensor, y_pred: tf.Tensor, ignore_ids: Sequence[int]):
    """Targets and logits one row per position, and which positions count. Ignored targets may
    be out of range (-1): they become 0, a valid id that a zero weight then leaves out."""
    y_true, keep = _flat_targets(y_true, ignore_ids)
    y_true = tf.where(keep, y_true, tf.zeros_like(y_true))
    return y_true, tf.reshape(y_pred, [-1, tf.shape(y_pred)[-1]]), keep


class CharacterAccuracy(tf.keras.metrics.SparseCategoricalAccuracy):
    """Flattened character accuracy over every position whose target is not in ``ignore_ids``."""

    def __init__(self, name: str = "accuracy", ignore_ids: Sequence[int] = (), dtype=tf.float32):
        super().__init__(name=name, dtype=dtype)
        self.ignore_ids = tuple(int(i) for i in ignore_ids)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, keep = _flat_predictions(y_true, y_pred, self.ignore_ids)
        return super().update_state(y_true, y_pred, sample_weight=tf.cast(keep, self.dtype))

    def get_config(self):
        return {**super().get_config(), "ignore_ids": list(self.ignore_ids)}


class NumTokens(tf.keras.metrics.Sum):
    """The number of targets that count (those not in ``ignore_ids``)."""

    def __init__(self, name: str = "num_tokens", ignore_ids: Sequence[int] = (), dtype=tf.int64):
        super().__init__(name=name, dtype=dtype)
        self.ignore_ids = tuple(int(i) for i in ignore_ids)

    def update_state(self, y_true, y_pred, sample_weight=None):
        _, keep = _flat_targets(y_true, self.ignore_ids)
        return super().update_state(tf.reduce_sum(tf.cast(keep, self.dtype)))

    def get_config(self):
        return {**super().get_config(), "ignore_ids": list(self.ignore_ids)}


class TokenLoss(tf.keras.metrics.Mean):
    """Mean cross-entropy (nats per character) over every target not in ``ignore_ids``.

    A mean over characters, however they are batched: Keras's own ``loss`` in ``evaluate`` is a
    mean of per-batch means weighted by sequences, which moves with the batching when batches
    hold different amounts of padding.
    """

    def __init__(self, name: str = "token_loss", ignore_ids: Sequence[int] = (), dtype=tf.float32):
        super().__init__(name=name, dtype=dtype)
        self.ignore_ids = tuple(int(i) for i in ignore_ids)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, logits, keep = _flat_predictions(y_true, y_pred, self.ignore_ids)
        losses = tf.keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        return super().update_state(losses, sample_weight=tf.cast(keep, self.dtype))

    def get_config(self):
        return {**super().get_config(), "ignore_ids": list(self.ignore_ids)}


class MaskedCrossEntropy(tf.keras.losses.Loss):
    """Mean cross-entropy (nats per character) of a batch over its targets that are not
    ``ignore_id``; 0, with a zero gradient, for a batch that has none.

    Keras's ``SparseCategoricalCrossentropy(ignore_class=...)`` divides by the number of targets
    that count, so a batch with none gives NaN (its gradient is zero all the same). The papers'
    pipeline makes such a batch: a snippet of 80k - 1 characters ends in the chunk
    ``[eos, pad x 80]``, whose targets are all padding, and where that chunk is alone in a client's
    last batch, the round's train/loss was NaN. Here the same mean is a ``divide_no_nan``: the
    same value and gradient for every other batch.

    Keras's own masking (an embedding's ``mask_zero`` mask on the logits) is not applied on top:
    an input that is padding always has a padding target, which ``ignore_id`` leaves out already.
    """

    def __init__(self, ignore_id: int, name: str = "masked_cross_entropy"):
        super().__init__(name=name)
        self.ignore_id = int(ignore_id)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            y_true, logits, keep = _flat_predictions(y_true, y_pred, (self.ignore_id,))
            logits = tf.cast(logits, tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
            keep = tf.cast(keep, losses.dtype)
            weights = keep
            if sample_weight is not None:  # one weight per sequence (or per position)
                sample_weight = tf.cast(sample_weight, losses.dtype)
                if sample_weight.shape.rank == 1:  # [batch] -> [batch, 1]
                    sample_weight = sample_weight[:, tf.newaxis]
                sample_weight = tf.broadcast_to(sample_weight, tf.shape(y_pred)[:-1])
                weights *= tf.reshape(sample_weight, [-1])
            return tf.math.divide_no_nan(tf.reduce_sum(losses * weights), tf.reduce_sum(keep))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "ignore_id": self.ignore_id}


def loss_fn(ignore_id: int | None) -> tf.keras.losses.Loss:
    """Mean cross-entropy (nats per character) over the targets that are not ``ignore_id``
    (:class:`MaskedCrossEntropy`; ``None``: over every target)."""
    if ignore_id is None:
        return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return MaskedCrossEntropy(ignore_id)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))


def bits_per_char(loss: float) -> float:
    return loss / math.log(2.0)
