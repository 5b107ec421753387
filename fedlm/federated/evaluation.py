"""Evaluation of the server model on a fixed set of test clients, built once for the whole run.

Which clients: ``eval.client_ids``, or every test client with data (one fixed seeded draw of
``eval.max_clients`` of them). Their sequences are preprocessed once, each client on its own as the
pipeline's ``evaluate`` makes them (no sequence crosses from one client into the next), and held in
memory (:mod:`fedlm.data.inmemory`).

Centralized: the server weights go into a compiled Keras model that ``evaluate``s every sequence,
``eval.batch_size`` at a time (a batch may hold several clients' sequences, as TFF's centralized
test data for the papers' task does). Its loss is the mean cross-entropy per evaluated character
(:class:`~fedlm.models.metrics.TokenLoss`), and like the accuracy it does not depend on how the
sequences are batched. Federated: TFF's ``build_fed_eval`` over the same clients, each client's
sequences batched on their own; its loss is TFF's (a mean of per-batch means, weighted by
sequences), equal to the centralized one when every batch is free of padding. Both report loss,
accuracy (and the paper pipeline's stricter accuracy), number of characters, perplexity and bits
per char. :class:`Evaluation` is the one the round loop calls: centralized, federated, both or none,
as ``eval.centralized`` and ``eval.federated`` say.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import tensorflow_federated as tff

from fedlm.config import EvalConfig
from fedlm.data.inmemory import ClientSequences, preprocess_once
from fedlm.errors import ConfigError
from fedlm.federated.samplers import evaluation_clients, resolve_client_ids
from fedlm.federated.task import Task
from fedlm.models.metrics import TokenLoss, bits_per_char, perplexity


def with_derived(metrics: dict[str, float]) -> dict[str, float]:
    """Add perplexity and bits per character, both derived from the mean loss."""
    out = {k: float(v) for k, v in metrics.items()}
    if "loss" in out:
        out["perplexity"] = perplexity(out["loss"])
        out["bits_per_char"] = bits_per_char(out["loss"])
    return out


def evaluation_client_ids(
    cfg: EvalConfig, test_eligible: Mapping[str, int], test_ids: Sequence[str]
) -> list[str]:
    """The clients of ``eval.role``: the test clients (the configured ones, or a fixed draw of
    ``eval.max_clients``) or the validation clients; never the same (see evaluation_clients)."""
    configured = []
    if cfg.client_ids:
        configured = resolve_client_ids(cfg.client_ids, list(test_ids), "eval.client_ids")
        for client_id in configured:
            if client_id not in test_eligible:
                raise ConfigError(
                    "eval.client_ids", client_id, "a test client with at least one batch"
                )
    test, validation = evaluation_clients(
        list(test_eligible), cfg.max_clients, cfg.validation_clients, configured
    )
    return validation if cfg.role == "validation" else test


def evaluation_sequences(
    cfg: EvalConfig, pipeline, snippets: Mapping[str, Sequence[str]], client_ids: Sequence[str]
) -> ClientSequences | None:
    """The evaluation clients' sequences, preprocessed once; None when nothing is evaluated."""
    if not client_ids or not (cfg.centralized or cfg.federated):
        return None
    return preprocess_once(
        lambda dataset: pipeline.evaluate(dataset, max_batches=cfg.max_batches),
        snippets,
        client_ids,
    )


class CentralizedEvaluator:
    """A compiled Keras model, reused at every evaluation, and the sequences it evaluates."""

    def __init__(self, task: Task, sequences: ClientSequences, batch_size: int):
        self.model = task.sequence_model()
        token_loss = TokenLoss("token_loss", ignore_ids=(task.pipeline.ignore_id,))
        self.model.compile(loss=task.loss(), metrics=[token_loss, *task.metrics()])
        self.dataset = sequences.batches(batch_size)

    def __call__(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        weights.assign_weights_to(self.model)
        results = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
        results["loss"] = results.pop("token_loss")
        return with_derived(results)


class FederatedEvaluator:
    """TFF's federated evaluation of the server weights over the evaluation clients."""

    def __init__(self, task: Task, sequences: ClientSequences, batch_size: int):
        self.datasets = sequences.client_batches(batch_size)
        self.process = tff.learning.algorithms.build_fed_eval(
            task.model_fn(self.datasets[0].element_spec)
        )
        self.state = None

    def __call__(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        if self.state is None:
            self.state = self.process.initialize()
        state = self.process.set_model_weights(self.state, weights)
        output = self.process.next(state, self.datasets)
        metrics = output.metrics["client_work"]["eval"]["current_round_metrics"]
        return with_derived(metrics)


class Evaluation:
    """The server model's evaluation that ``eval`` asks for: centralized (``eval/`` metrics),
    federated (``fed_eval/``), both, or none (no evaluation clients, or both off).

    Build it inside the execution context, after the learning process: the federated evaluation
    is TFF's own process, and a Keras model made before TFF traces its models stops working.
    """

    def __init__(self, cfg: EvalConfig, task: Task, sequences: ClientSequences | None):
        batch_size = cfg.batch_size or task.pipeline.batch_size  # null: training.batch_size
        on = sequences is not None
        # TFF's process first, the Keras model after it (see above).
        self.federated = (
            FederatedEvaluator(task, sequences, batch_size) if on and cfg.federated else None
        )
        self.centralized = (
            CentralizedEvaluator(task, sequences, batch_size) if on and cfg.centralized else None
        )

    def __call__(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        """The metrics of ``weights``, with ``eval/seconds``; empty when nothing is evaluated."""
        metrics = {}
        started = time.monotonic()
        if self.centralized is not None:
            metrics.update({f"eval/{k}": v for k, v in self.centralized(weights).items()})
        if self.federated is not None:
            metrics.update({f"fed_eval/{k}": v for k, v in self.federated(weights).items()})
        if metrics:
            metrics["eval/seconds"] = time.monotonic() - started
        return metrics
