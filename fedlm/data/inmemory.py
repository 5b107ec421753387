"""Client data held in memory: every client's snippets read once, evaluation sequences made once.

Training. :func:`snippet_dataset` gives a client's snippets (read once from the SQLite file by
:func:`fedlm.data.clients.load_snippets`) as the very dataset TFF's ``ClientData`` would give
for that client: same element structure, same order, so the pipeline's seeded shuffle makes the
same batches, and nothing reads SQLite during the rounds.

Evaluation. The evaluation set of a run never changes, so :func:`preprocess_once` runs the
pipeline's evaluation preprocessing once, all clients in one tf.data pipeline (each client still
preprocessed on its own, so no sequence crosses from one client into the next, several clients at
a time), and keeps the resulting (input, target) sequences as arrays: :class:`ClientSequences`
serves them again and again at the cost of a slice.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


def snippet_dataset(snippets: Sequence[str]) -> tf.data.Dataset:
    """``snippets`` as TFF's Shakespeare ``ClientData`` yields a client: ``{'snippets': str}``."""
    values = tf.constant(list(snippets), dtype=tf.string, shape=[len(snippets)])
    return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(snippets=values))


@dataclass(frozen=True)
class ClientSequences:
    """The (input, target) sequences of several clients, in memory, in client order.

    Client ``c``'s sequences are rows ``client_starts[c] : client_starts[c + 1]`` of ``inputs``
    and ``targets``, in the order the pipeline made them.
    """

    client_ids: tuple[str, ...]
    inputs: np.ndarray
    targets: np.ndarray
    client_starts: np.ndarray

    @property
    def num_sequences(self) -> int:
        return len(self.inputs)

    def batches(self, batch_size: int) -> tf.data.Dataset:
        """Every sequence once, ``batch_size`` at a time (a batch may hold several clients')."""
        data = tf.data.Dataset.from_tensor_slices((self.inputs, self.targets))
        return data.batch(batch_size)

    def client_batches(self, batch_size: int) -> list[tf.data.Dataset]:
        """One dataset per client, its sequences ``batch_size`` at a time."""
        out = []
        for first, last in zip(self.client_starts[:-1], self.client_starts[1:], strict=True):
            rows = (self.inputs[first:last], self.targets[first:last])
            out.append(tf.data.Dataset.from_tensor_slices(rows).batch(batch_size))
        return out


def preprocess_once(
    preprocess: Callable[[tf.data.Dataset], tf.data.Dataset],
    snippets: Mapping[str, Sequence[str]],
    client_ids: Sequence[str],
    parallel: int | None = None,
) -> ClientSequences:
    """Run ``preprocess`` (a pipeline's evaluation preprocessing) once on every client.

    All clients go through one tf.data pipeline that preprocesses ``parallel`` clients at a time
    (default: TensorFlow's choice), each one on its own, given as :func:`snippet_dataset` gives
    it; the sequences of its batches are put back in client order and kept as arrays.
    """
    client_ids = list(client_ids)
    ragged = tf.RaggedTensor.from_row_lengths(
        tf.constant([s for c in client_ids for s in snippets[c]], dtype=tf.string),
        [len(snippets[c]) for c in client_ids],
    )

    def one_client(index, client_snippets):
        dataset = tf.data.Dataset.from_tensor_slices(
            collections.OrderedDict(snippets=client_snippets)
        )
        return preprocess(dataset).map(lambda x, y: (index, x, y))

    clients = tf.data.Dataset.from_tensor_slices(ragged).enumerate()
    batches = clients.interleave(
        one_client,
        cycle_length=parallel or tf.data.AUTOTUNE,
        num_parallel_calls=parallel or tf.data.AUTOTUNE,
        deterministic=True,
    )
    per_client: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in client_ids]
    for index, x, y in batches.as_numpy_iterator():
        per_client[index].append((x, y))
    counts = [sum(len(x) for x, _ in batches) for batches in per_client]
    flat = [batch for batches in per_client for batch in batches]
    if not flat:
        raise ValueError("no sequences: every client is empty under this preprocessing")
    return ClientSequences(
        client_ids=tuple(client_ids),
        inputs=np.concatenate([x for x, _ in flat]),
        targets=np.concatenate([y for _, y in flat]),
        client_starts=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )
