import numpy as np
import pytest
import tensorflow as tf
from shipped_models import MODEL_CONFIGS, model_config

from fedlm.errors import ConfigError
from fedlm.models.architectures import build_model


def _tutorial_model(vocab_size: int, batch_size: int) -> tf.keras.Model:
    # The tutorial's (and TF's "Text generation with an RNN") way of building the Dickens model.
    return tf.keras.Sequential(
        [
            tf.keras.layers.Embedding(vocab_size, 256, batch_input_shape=[batch_size, None]),
            tf.keras.layers.GRU(
                1024,
                return_sequences=True,
                stateful=True,
                recurrent_initializer="glorot_uniform",
            ),
            tf.keras.layers.Dense(vocab_size),
        ]
    )


def test_dickens_gru_has_the_published_layout_and_weights_move_across_batch_sizes():
    cfg = model_config("dickens_gru")
    model = build_model(cfg, 86)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(86, 256), (256, 3072), (1024, 3072), (2, 3072), (1024, 86), (86,)]
    tutorial = _tutorial_model(86, batch_size=8)
    assert [w.shape for w in tutorial.get_weights()] == shapes
    tutorial.set_weights(model.get_weights())
    generator = build_model(cfg, 86, batch_size=1, stateful=True)
    generator.set_weights(tutorial.get_weights())
    for a, b in zip(generator.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lstm_2x256_equals_tffs_paper_model():
    from tensorflow_federated.python.simulation.baselines.shakespeare import (
        char_prediction_models,
    )

    model = build_model(model_config("lstm_2x256"), 90, mask_zero=True)
    assert model.count_params() == 820_522
    reference = char_prediction_models.create_recurrent_model(90, sequence_length=100)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in reference.get_weights()]
    assert model.layers[2].kernel_initializer.__class__ is tf.keras.initializers.HeNormal
    ids = tf.constant([[5, 3, 0, 0]], tf.int64)
    assert model.layers[1].compute_mask(ids).numpy().tolist() == [[True, True, False, False]]


def test_tiny_maps_ids_to_logits_and_a_stateful_copy_keeps_its_state():
    cfg = model_config("tiny")
    model = build_model(cfg, 87)
    assert model(tf.zeros([2, 5], tf.int64)).shape == (2, 5, 87)
    stateful = build_model(cfg, 87, batch_size=1, stateful=True)
    stateful.set_weights(model.get_weights())
    ids = tf.constant([[1, 2, 3]], tf.int64)
    whole = model(ids)[:, -1]
    stateful(ids[:, :2])
    np.testing.assert_allclose(stateful(ids[:, 2:])[:, -1], whole, atol=1e-5)


def test_bad_model_values_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="model.cell='rnn'"):
        build_model(model_config("tiny", cell="rnn"), 86)
    with pytest.raises(ConfigError, match="model.units=0"):
        build_model(model_config("tiny", units=0), 86)
    with pytest.raises(ConfigError, match="batch_size"):
        build_model(model_config("tiny"), 86, stateful=True)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(model_config("tiny"), 0)


def test_every_model_yaml_starts_with_a_comment_and_fits_the_schema():
    names = sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml"))
    assert {"dickens_gru", "lstm_2x256", "tiny"} <= set(names)
    for name in names:
        assert (MODEL_CONFIGS / f"{name}.yaml").read_text().startswith("# ")
        assert model_config(name).name == name


def test_an_unrolled_fixed_length_model_has_the_looped_models_weights_and_numbers():
    """Weights move both ways between the looped (variable-length) and the unrolled model, and
    the unrolled one gives the same logits, padding masked as the papers' pipeline masks it."""
    import dataclasses

    cfg = dataclasses.replace(model_config("lstm_2x256"), units=16, unroll=True)
    looped = build_model(dataclasses.replace(cfg, unroll=False), 90, mask_zero=True)
    unrolled = build_model(cfg, 90, mask_zero=True, seq_len=7)
    assert [w.shape for w in unrolled.get_weights()] == [w.shape for w in looped.get_weights()]
    assert unrolled.get_layer("lstm_0").unroll and not looped.get_layer("lstm_0").unroll
    assert unrolled.input_shape == (None, 7) and looped.input_shape == (None, None)
    unrolled.set_weights(looped.get_weights())
    ids = np.array([[1, 5, 9, 2, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3]])
    np.testing.assert_allclose(unrolled(ids).numpy(), looped(ids).numpy(), atol=1e-6)
    # Without a fixed length there is nothing to unroll: the variable-length model stays looped.
    assert not build_model(cfg, 90).get_layer("lstm_0").unroll
    with pytest.raises(ConfigError, match="training.seq_len"):
        build_model(cfg, 90, seq_len=0)
