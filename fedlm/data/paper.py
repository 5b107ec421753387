"""The papers' Shakespeare pipeline: TensorFlow Federated's own baseline preprocessing.

McMahan et al. 2017 and Reddi et al. 2021 report federated Shakespeare on the task that
``tff.simulation.baselines.shakespeare`` builds. Its per-client pipeline, TFF's
``create_preprocess_fn(ClientSpec(...), sequence_length)``, is called here, not re-written::

    snippets -> shuffle(shuffle_buffer) -> repeat(local_epochs) -> take(max_elements)
             -> [bos] + (byte ids + 1) + [eos], padded with 0 to a multiple of seq_len + 1
             -> chunks of seq_len + 1 -> batch(batch_size) -> (input, target)

so a sequence never crosses from one snippet into the next. What TFF's function does not offer,
fedlm wraps around it: ``take(max_batches)`` after it, a seed for its shuffle, and a Python count
of batches and tokens.

The seed. TFF's ``dataset.shuffle(shuffle_buffer)`` takes no seed. With a seed, :meth:`train` gives
the shuffle the seeds it would take just after ``tf.random.set_seed(seed)``: TensorFlow's global
seed, and the first operation seed drawn from it (TensorFlow's documented rule for random ops
without a seed of their own; :func:`shuffle_seeds`), so the same seed gives the same batches, and
the pipeline is TFF's, op for op. It does so without calling ``tf.random.set_seed``, which clears
TensorFlow's kernel caches: every client's pipeline then had to be instantiated again, about 90 ms
a client (10 s a round of 112 clients) against 6 ms now. Nothing global is set. Without a seed the
shuffle is TFF's, unseeded.

Things to know about TFF's pipeline (all checked in ``tests/data/test_paper.py``):

- Snippets are split into UTF-8 *bytes* (``tf.strings.bytes_split``): a character outside the
  86-character vocabulary becomes one ``OOV`` per byte (``'é'`` -> ``[87, 87]``).
- The last batch of a client is short, not dropped or padded: every client with a snippet trains.
- Epochs are repeated before chunking, so a batch may hold chunks of two epochs, and one call
  yields ``ceil(local_epochs * chunks / batch_size)`` batches; ``max_elements`` caps *snippets*
  after the repeat, not batches.
- The baseline's loss (plain ``SparseCategoricalCrossentropy``) does not mask padding; its metrics
  do. fedlm masks padding in the loss too (:class:`fedlm.models.metrics.MaskedCrossEntropy`, which
  gives 0, not NaN, for a batch whose targets are all padding: the chunk ``[eos, pad x seq_len]``
  alone in a client's last batch).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.data import sizes
from fedlm.data.preprocess import check_int
from fedlm.tff_compat import shakespeare_preprocessing

# The baseline's preprocessing module, which tff.simulation.baselines.shakespeare does not
# re-export (TFF's private API: fedlm/tff_compat.py).
tff_preprocessing = shakespeare_preprocessing()

PAD, OOV, BOS, EOS = tff_preprocessing.get_special_tokens()  # 0, 87, 88, 89; characters 1..86
VOCAB_SIZE = tff.simulation.baselines.shakespeare.VOCAB_LENGTH  # 90
CHARS = "".join(tff_preprocessing.CHAR_VOCAB)  # character id - 1 (the same list as fedlm.vocab)

# Targets left out of accuracy. The papers' (TFF's MaskedCategoricalAccuracy(masked_tokens=[PAD])):
# end-of-snippet and out-of-vocabulary targets count.
MASKED_FOR_ACCURACY = (PAD,)
# Not the papers' statistic: the stricter accuracy other frameworks (e.g. LEAF) report, which also
# leaves out eos and oov targets. Always log it under a different name.
MASKED_FOR_ACCURACY_NO_EOS_OOV = (PAD, EOS, OOV)

DEFAULT_SEQ_LEN = tff_preprocessing.DEFAULT_SEQUENCE_LENGTH  # 80, McMahan et al. 2017
DEFAULT_SHUFFLE_BUFFER = tff_preprocessing.DEFAULT_SHUFFLE_BUFFER_SIZE  # 50, TFF's baseline
DEFAULT_BATCH_SIZE = 4  # Reddi et al. 2021, Shakespeare's client batch size


_MAX_SEED = 2**31 - 1  # TensorFlow truncates seeds to 31 bits (random_seed._MAXINT32)


def shuffle_seeds(seed: int) -> tuple[int, int]:
    """The (seed, seed2) pair an unseeded ``dataset.shuffle`` takes in eager mode just after
    ``tf.random.set_seed(seed)``: the global seed, and the first operation seed TensorFlow's
    eager context draws from it (``random.Random(seed).randint(0, 2**31 - 1)``), each truncated
    to 31 bits; TensorFlow turns (0, 0), which its kernels read as "not seeded", into
    (0, 2**31 - 1). Pinned against ``tf.random.set_seed`` in tests/data/test_paper.py."""
    seeds = seed % _MAX_SEED, random.Random(seed).randint(0, _MAX_SEED) % _MAX_SEED
    return (0, _MAX_SEED) if seeds == (0, 0) else seeds


def seeded_shuffle(dataset: tf.data.Dataset, buffer_size: int, seed: int) -> tf.data.Dataset:
    """``dataset.shuffle(buffer_size)`` as it shuffles after ``tf.random.set_seed(seed)``, the same
    op with the same seeds (:func:`shuffle_seeds`), without setting TensorFlow's global seed."""
    seed1, seed2 = shuffle_seeds(seed)
    specs = tf.nest.flatten(dataset.element_spec)
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(dataset),
        buffer_size=tf.constant(buffer_size, tf.int64),
        seed=tf.constant(seed1, tf.int64),
        seed2=tf.constant(seed2, tf.int64),
        seed_generator=tf.raw_ops.DummySeedGenerator(),
        output_types=[s.dtype for s in specs],
        output_shapes=[s.shape for s in specs],
        reshuffle_each_iteration=True,
    )
    return tf.data.experimental.from_variant(variant, dataset.element_spec)


@dataclass(frozen=True)
class PaperPipeline:
    """TFF's baseline preprocessing of one client's snippets into (input, target) batches."""

    seq_len: int = DEFAULT_SEQ_LEN
    batch_size: int = DEFAULT_BATCH_SIZE
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER  # 1: no shuffling
    max_elements: int | None = None  # TFF's ClientSpec cap on snippets, after the epoch repeat
    loss_on_padding: bool = False  # the training loss averages over padding targets too (TFF's)

    name = "paper"
    ignore_id = PAD
    vocab_size = VOCAB_SIZE

    @property
    def loss_ignore_id(self) -> int | None:
        """The target the training loss leaves out: padding, or none with ``loss_on_padding``
        (TFF's Shakespeare baseline loss, the papers': through TFF's forward pass, the mean over
        every position)."""
        return None if self.loss_on_padding else PAD

    def __post_init__(self):
        check_int("training.seq_len", self.seq_len, 1)
        check_int("training.batch_size", self.batch_size, 1)
        check_int("training.shuffle_buffer", self.shuffle_buffer, 1)
        check_int("training.max_elements", self.max_elements, 1, allow_none=True)

    def client_spec(self, local_epochs: int = 1) -> tff.simulation.baselines.ClientSpec:
        """TFF's description of this pipeline's training clients."""
        check_int("training.local_epochs", local_epochs, 1)
        return tff.simulation.baselines.ClientSpec(
            num_epochs=local_epochs,
            batch_size=self.batch_size,
            max_elements=self.max_elements,
            shuffle_buffer_size=self.shuffle_buffer,
        )

    def eval_client_spec(self) -> tff.simulation.baselines.ClientSpec:
        """TFF's evaluation clients: one epoch, in order, uncapped (batch size is ours)."""
        return tff.simulation.baselines.ClientSpec(
            num_epochs=1, batch_size=self.batch_size, shuffle_buffer_size=1
        )

    def num_batches(self, snippets: Iterable[str | bytes]) -> int:
        """Batches one epoch of a client with these snippets yields, before any cap (no TF)."""
        return sizes.paper_batches(snippets, self.seq_len, self.batch_size)

    def num_sequences(self, snippets: Iterable[str | bytes]) -> int:
        """(seq_len + 1)-token chunks one epoch yields: each snippet is padded to whole chunks."""
        return sizes.paper_sequences(snippets, self.seq_len)

    def num_tokens(self, snippets: Iterable[str | bytes]) -> int:
        """Non-padding targets of one epoch (what TFF's ``NumTokensCounter([PAD])`` counts).

        Every chunk starts with a real token (padding is shorter than a chunk), which is an input
        only; all other real tokens are targets once.
        """
        total = 0
        for s in snippets:
            tokens = sizes.paper_snippet_tokens(s)
            total += tokens - math.ceil(tokens / (self.seq_len + 1))
        return total

    @functools.cached_property
    def _tokenize_and_batch(self):
        """TFF's pipeline after its shuffle, repeat and cap (those three are 1, 1 and none here),
        traced once: building a client's dataset then costs no Python tracing, round after
        round. It is also the whole evaluation pipeline (TFF's eval spec shuffles nothing)."""
        return tf.function(
            tff_preprocessing.create_preprocess_fn(self.eval_client_spec(), self.seq_len)
        )

    def train(
        self,
        dataset: tf.data.Dataset,
        local_epochs: int = 1,
        max_batches: int | None = None,
        seed: int | None = None,
    ) -> tf.data.Dataset:
        """TFF's training pipeline for ``local_epochs``, capped in batches, shuffled by ``seed``.

        ``seed``: the shuffle's as after ``tf.random.set_seed(seed)``, without setting it (see the
        module's docstring); None leaves the shuffle as TFF has it, unseeded. TFF's first three
        steps (shuffle, repeat, take) are applied here as its ``create_preprocess_fn`` applies
        them, then the rest of its function (tests/data/test_paper.py checks the batches against
        TFF's own, seed for seed).
        """
        check_int("training.max_batches_per_client", max_batches, 1, allow_none=True)
        spec = self.client_spec(local_epochs)
        if spec.shuffle_buffer_size > 1 and seed is not None:
            # TFF's shuffle is the first random op its function builds: after
            # tf.random.set_seed(seed) it would take the first operation seed drawn from it.
            dataset = seeded_shuffle(dataset, spec.shuffle_buffer_size, seed)
        elif spec.shuffle_buffer_size > 1:
            dataset = dataset.shuffle(spec.shuffle_buffer_size)
        if spec.num_epochs > 1:
            dataset = dataset.repeat(spec.num_epochs)
        if spec.max_elements is not None:
            dataset = dataset.take(spec.max_elements)
        out = self._tokenize_and_batch(dataset)
        return out.take(max_batches) if max_batches is not None else out

    def evaluate(self, dataset: tf.data.Dataset, max_batches: int | None = None) -> tf.data.Dataset:
        """TFF's evaluation pipeline: every snippet once, in order, not shuffled."""
        check_int("eval.max_batches", max_batches, 1, allow_none=True)
        out = self._tokenize_and_batch(dataset)
        return out.take(max_batches) if max_batches is not None else out
