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


def test_perplexity_and_bits_per_char_come_from_the_loss():
    assert perplexity(math.log(86)) == pytest.approx(86)
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(86)) == pytest.approx(math.log2(86))
    assert perplexity(0.0) == 1.0
