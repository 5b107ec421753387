"""Evaluation of the server model: centralized in Keras (as the tutorial does) and federated (TFF).

Centralized: the server weights go into a compiled Keras model that ``evaluate``s the test split of
the configured evaluation clients, each client's text preprocessed on its own (no sequence crosses
from one client into the next). Federated: TFF's ``build_fed_eval`` over the same clients. Both
report loss, accuracy (and the paper pipeline's stricter accuracy), perplexity and bits per char.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.federated.task import Task
from fedlm.models.metrics import bits_per_char, perplexity


def with_derived(metrics: dict[str, float]) -> dict[str, float]:
    """Add perplexity and bits per character, both derived from the mean loss."""
    out = {k: float(v) for k, v in metrics.items()}
    if "loss" in out:
        out["perplexity"] = perplexity(out["loss"])
        out["bits_per_char"] = bits_per_char(out["loss"])
    return out


def client_datasets(
    client_data, client_ids: Sequence[str], preprocess: Callable[[tf.data.Dataset], tf.data.Dataset]
) -> list[tf.data.Dataset]:
    return [preprocess(client_data.create_tf_dataset_for_client(c)) for c in client_ids]


def concatenate(datasets: Sequence[tf.data.Dataset]) -> tf.data.Dataset:
    """One dataset that yields each client's batches in turn (the tutorial's flat_map)."""
    out = datasets[0]
    for d in datasets[1:]:
        out = out.concatenate(d)
    return out


class CentralizedEvaluator:
    """A compiled Keras model, reused at every evaluation, and the data it evaluates on."""

    def __init__(self, task: Task, dataset: tf.data.Dataset):
        self.model = task.compiled_keras_model()
        self.dataset = dataset

    def __call__(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        weights.assign_weights_to(self.model)
        results = self.model.evaluate(self.dataset, verbose=0)
        return with_derived(dict(zip(self.model.metrics_names, results, strict=True)))


class FederatedEvaluator:
    """TFF's federated evaluation of the server weights over a list of client datasets."""

    def __init__(self, task: Task, datasets: Sequence[tf.data.Dataset]):
        self.process = tff.learning.algorithms.build_fed_eval(
            task.model_fn(datasets[0].element_spec)
        )
        self.datasets = list(datasets)
        self.state = None

    def __call__(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        if self.state is None:
            self.state = self.process.initialize()
        state = self.process.set_model_weights(self.state, weights)
        output = self.process.next(state, self.datasets)
        metrics = output.metrics["client_work"]["eval"]["current_round_metrics"]
        return with_derived(metrics)
