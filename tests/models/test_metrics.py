import math

import numpy as np
import pytest
import tensorflow as tf

from fedlm import vocab
from fedlm.models.architectures import build_model
from fedlm.models.metrics import CharacterAccuracy, NumTokens, bits_per_char, loss_fn, perplexity


def test_untrained_model_on_random_text_is_at_chance(tiny):
    # The tutorial's sanity check: random ids, an untrained model, accuracy ~ 1/86, loss ~ ln 86.
    tf.keras.utils.set_random_seed(0)
    model = build_model(tiny, 86)
    model.compile(loss=loss_fn(vocab.IGNORE_ID), metrics=[CharacterAccuracy()])
    ids = np.random.default_rng(0).integers(0, 86, size=(64, 101))
    loss, accuracy = model.evaluate(ids[:, :-1], ids[:, 1:], batch_size=16, verbose=0)
    # 6400 targets: one standard deviation of the accuracy is 0.0013.
    assert accuracy == pytest.approx(1 / 86, abs=0.006)
    assert loss == pytest.approx(math.log(86), abs=0.05)


def test_masked_accuracy_and_loss_on_a_padded_batch():
    y_true = tf.constant([[1, 2, -1], [0, -1, -1]], tf.int64)
    predicted = [[1, 0, 5], [0, 3, 3]]  # right, wrong, (padding); right, (padding), (padding)
    logits = tf.one_hot(predicted, depth=6) * 4.0
    accuracy = CharacterAccuracy(ignore_ids=[vocab.IGNORE_ID])
    accuracy.update_state(y_true, logits)
    assert accuracy.result().numpy() == pytest.approx(2 / 3)
    tokens = NumTokens(ignore_ids=[vocab.IGNORE_ID])
    tokens.update_state(y_true, logits)
    assert tokens.result().numpy() == 3
    # Unmasked, the tutorial's flattened accuracy counts all 6 positions (-1 never matches).
    flattened = CharacterAccuracy()
    flattened.update_state(y_true, logits)
    assert flattened.result().numpy() == pytest.approx(2 / 6)
    log_p = tf.nn.log_softmax(logits).numpy()
    expected = -(log_p[0, 0, 1] + log_p[0, 1, 2] + log_p[1, 0, 0]) / 3
    assert loss_fn(vocab.IGNORE_ID)(y_true, logits).numpy() == pytest.approx(expected, rel=1e-5)


def loss_and_gradient(loss, y_true, logits, sample_weight=None):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(y_true, logits, sample_weight=sample_weight)
    return float(value), tape.gradient(value, logits).numpy()


@pytest.mark.parametrize("sample_weight", [None, tf.constant([1.0, 0.5, 2.0])])
def test_the_training_loss_is_kerass_ignore_class_loss_where_a_target_counts(sample_weight):
    y_true = tf.constant([[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 1]], tf.int64)
    logits = tf.random.stateless_normal([3, 4, 7], seed=[1, 2])
    keras = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    ours, our_gradient = loss_and_gradient(loss_fn(0), y_true, logits, sample_weight)
    theirs, their_gradient = loss_and_gradient(keras, y_true, logits, sample_weight)
    assert ours == pytest.approx(theirs, rel=1e-6)
    np.testing.assert_allclose(our_gradient, their_gradient, rtol=1e-5, atol=1e-8)


def test_a_batch_whose_targets_all_count_for_nothing_has_loss_zero_not_nan():
    # The papers' pipeline's chunk [eos, pad x (T-1)] alone in a client's last batch: every target
    # is padding. Keras's ignore_class loss is NaN there (0 / 0); its gradient is zero.
    y_true = tf.zeros([1, 4], tf.int64)
    logits = tf.random.stateless_normal([1, 4, 7], seed=[3, 4])
    keras = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    assert math.isnan(loss_and_gradient(keras, y_true, logits)[0])
    value, gradient = loss_and_gradient(loss_fn(0), y_true, logits)
    assert value == 0.0
    assert not gradient.any()


def test_perplexity_and_bits_per_char_come_from_the_loss():
    assert perplexity(math.log(86)) == pytest.approx(86)
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(86)) == pytest.approx(math.log2(86))
    assert perplexity(0.0) == 1.0
