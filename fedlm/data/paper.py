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

The seed. TFF's ``dataset.shuffle(shuffle_buffer)`` takes no seed. With a seed, :meth:`train` calls
``tf.random.set_seed(seed)`` just before it builds TFF's pipeline: the shuffle then takes its
operation seed from TensorFlow's global seed (TensorFlow's documented rule for random ops without
a seed of their own), so the same seed gives the same batches, and the pipeline is TFF's, op for
op. The cost is a side effect: the global seed stays set to ``seed`` afterwards, as if the caller
had called ``tf.random.set_seed`` itself. Without a seed nothing is set, exactly as in TFF.

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

        ``seed`` sets TensorFlow's global seed (see the module's docstring); None leaves the
        shuffle as TFF has it, unseeded. TFF's first three steps (shuffle, repeat, take) are
        applied here as its ``create_preprocess_fn`` applies them, then the rest of its function
        (tests/data/test_paper.py checks the batches against TFF's own, seed for seed).
        """
        check_int("training.max_batches_per_client", max_batches, 1, allow_none=True)
        spec = self.client_spec(local_epochs)
        if seed is not None:
            # TFF's shuffle is the first random op its function builds: it takes the first
            # operation seed drawn from this global seed.
            tf.random.set_seed(seed)
        if spec.shuffle_buffer_size > 1:
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
