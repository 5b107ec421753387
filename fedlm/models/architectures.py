"""Character models from config: Embedding -> ``layers`` x GRU/LSTM -> Dense logits.

Two layouts matter, and the builder reproduces both weight for weight:

- the tutorial's model (``conf/model/dickens_gru.yaml``), the layout of TFF's published
  ``dickens_rnn`` Keras models: Embedding(86, 256) -> GRU(1024, recurrent_initializer
  glorot_uniform) -> Dense(86);
- the papers' model (``conf/model/lstm_2x256.yaml``), TFF's
  ``char_prediction_models.create_recurrent_model``: Embedding(vocab, 8) -> 2 x LSTM(256,
  kernel_initializer he_normal) -> Dense(vocab).

The initializers follow the cell (GRU: the tutorial's, LSTM: TFF's), so random starts match the
reference models too. ``vocab_size`` is not a model key: it follows the data pipeline (86; 87 with
the ``oov`` policy; 90 for the paper pipeline) and the caller passes it in.
"""

from __future__ import annotations

import tensorflow as tf

from fedlm.config import CELLS, ModelConfig
from fedlm.errors import ConfigError


def _recurrent_layer(
    cfg: ModelConfig, stateful: bool, name: str, unroll: bool = False
) -> tf.keras.layers.Layer:
    if cfg.cell == "gru":
        return tf.keras.layers.GRU(
            cfg.units,
            return_sequences=True,
            stateful=stateful,
            recurrent_initializer="glorot_uniform",
            unroll=unroll,
            name=name,
        )
    return tf.keras.layers.LSTM(
        cfg.units,
        return_sequences=True,
        stateful=stateful,
        kernel_initializer="he_normal",
        unroll=unroll,
        name=name,
    )


def check_model_config(cfg: ModelConfig, key: str = "model") -> None:
    if cfg.cell not in CELLS:
        raise ConfigError(f"{key}.cell", cfg.cell, CELLS)
    for field in ("embedding_dim", "units", "layers"):
        value = getattr(cfg, field)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}.{field}", value, "an integer >= 1")


def build_model(
    cfg: ModelConfig,
    vocab_size: int,
    batch_size: int | None = None,
    stateful: bool = False,
    mask_zero: bool = False,
    seq_len: int | None = None,
) -> tf.keras.Model:
    """An uncompiled Keras model: character ids [batch, time] -> logits [batch, time, vocab].

    ``batch_size`` fixes the batch dimension (required for ``stateful``, as in the tutorial's
    batch-1 generation model). ``seq_len`` fixes the time dimension, and then the recurrent layers
    are unrolled when ``cfg.unroll`` is set: the same weights and numbers, a faster small-batch
    step on a CPU, a longer first trace. Weights depend on neither size, so ``set_weights`` moves
    them between models built with different batch sizes and lengths, unrolled or not.
    """
    check_model_config(cfg)
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ConfigError("vocab_size", vocab_size, "an integer >= 1 (from the data pipeline)")
    if stateful and batch_size is None:
        raise ConfigError("batch_size", None, "a fixed batch size for a stateful model")
    if seq_len is not None and (not isinstance(seq_len, int) or seq_len < 1):
        raise ConfigError("training.seq_len", seq_len, "an integer >= 1")
    unroll = cfg.unroll and seq_len is not None
    inputs = tf.keras.Input(shape=(seq_len,), batch_size=batch_size, dtype=tf.int64, name="ids")
    x = tf.keras.layers.Embedding(
        vocab_size, cfg.embedding_dim, mask_zero=mask_zero, name="embedding"
    )(inputs)
    for i in range(cfg.layers):
        x = _recurrent_layer(cfg, stateful, name=f"{cfg.cell}_{i}", unroll=unroll)(x)
    logits = tf.keras.layers.Dense(vocab_size, name="logits")(x)
    return tf.keras.Model(inputs, logits, name=cfg.name)
