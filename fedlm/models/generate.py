"""Text generation, as in the tutorial: a batch-1 stateful copy of the model samples one character
at a time from a start string.

Weights move between batch sizes with ``set_weights`` (the tutorial trains at batch 8 and
generates at batch 1). Sampling uses NumPy's generator, so a ``seed`` gives the same text every
time; ``temperature`` divides the logits and ``top_k`` keeps only the k most likely characters.
Ids outside the 86-character vocabulary (the ``oov`` row) are never sampled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from fedlm import vocab
from fedlm.config import ModelConfig
from fedlm.errors import ConfigError, ModelError
from fedlm.models.architectures import build_model
from fedlm.models.pretrained import check_weights, fetch_pretrained, load_keras_model


def check_prompt(start_string: str, key: str = "prompt") -> None:
    if not start_string:
        raise ConfigError(key, start_string, "at least one character of the vocabulary")
    unknown = sorted(vocab.unknown_chars(start_string))
    if unknown:
        raise ConfigError(
            key,
            start_string,
            f"characters of the 86-character vocabulary; not in it: {unknown}",
        )


def check_sampling(length: int, temperature: float, top_k: int | None) -> None:
    if not isinstance(length, int) or length < 0:
        raise ConfigError("length", length, "an integer >= 0")
    if temperature is None or temperature <= 0:
        raise ConfigError("temperature", temperature, "a number > 0")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ConfigError("top_k", top_k, "an integer >= 1 or null")


def sample_next(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> int:
    """One id drawn from softmax(logits / temperature), restricted to the top_k and to CHARS."""
    logits = np.asarray(logits, np.float64)[: len(vocab.CHARS)] / temperature
    if top_k is not None and top_k < len(logits):
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    probs = np.exp(logits - logits.max())
    return int(rng.choice(len(probs), p=probs / probs.sum()))


class TextGenerator:
    """Samples text from weights of one architecture: the stateful batch-1 model and its step
    function are built once, so a run that generates every evaluation pays for them once.

    ``id_offset``: the id of ``vocab.CHARS[0]`` in the model, 0 for the tutorial's pipeline, 1 for
    the papers' (TFF's baseline ids, where 0 is padding); only character ids are ever sampled.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, id_offset: int = 0):
        if not 0 <= id_offset <= vocab_size - len(vocab.CHARS):
            raise ConfigError("id_offset", id_offset, f"0..{vocab_size - len(vocab.CHARS)}")
        self.id_offset = id_offset
        self.model = build_model(cfg, vocab_size, batch_size=1, stateful=True)
        self.step = tf.function(lambda ids: self.model(ids, training=False)[:, -1, :])

    def __call__(
        self,
        weights: list[np.ndarray],
        start_string: str,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str:
        """``start_string`` followed by ``length`` characters sampled from ``weights``."""
        check_prompt(start_string)
        check_sampling(length, temperature, top_k)
        self.model.set_weights(weights)
        self.model.reset_states()  # as a new model: the recurrent state starts at zero
        offset = self.id_offset
        rng = np.random.default_rng(seed)
        ids = tf.constant([[i + offset for i in vocab.encode(start_string)]], tf.int64)
        generated = []
        for _ in range(length):
            next_char = sample_next(self.step(ids)[0].numpy()[offset:], temperature, top_k, rng)
            generated.append(vocab.CHARS[next_char])
            ids = tf.constant([[next_char + offset]], tf.int64)
        return start_string + "".join(generated)


def generate_text(
    weights: list[np.ndarray],
    cfg: ModelConfig,
    vocab_size: int,
    start_string: str,
    length: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    id_offset: int = 0,
) -> str:
    """``start_string`` followed by ``length`` sampled characters (one :class:`TextGenerator`'s
    text: build one to generate several times from the same architecture)."""
    check_prompt(start_string)  # before the model is built (the generator checks them again)
    check_sampling(length, temperature, top_k)
    generator = TextGenerator(cfg, vocab_size, id_offset)
    return generator(weights, start_string, length, temperature, top_k, seed)


def load_weights_for_generation(
    path: str | Path, cfg: ModelConfig, vocab_size: int | None = None
) -> list[np.ndarray]:
    """Weights for :func:`generate_text` from a saved Keras model (file or SavedModel directory),
    or anything ``model.pretrained`` accepts (``dickens``, a URL); checked against ``cfg``.

    ``vocab_size=None`` takes it from the saved model's embedding. Training checkpoints are the
    tracking package's to add here.
    """
    where = fetch_pretrained(str(path), cfg.name)
    if where is None:
        raise ModelError(
            f"model.pretrained={path!r}: generation needs trained weights; give the path of a "
            "saved Keras model, a URL, or dickens"
        )
    weights = load_keras_model(where).get_weights()
    if vocab_size is None:
        vocab_size = int(weights[0].shape[0])
    check_weights(weights, cfg, vocab_size, source=f"model.pretrained={str(path)!r} ({where})")
    return weights
