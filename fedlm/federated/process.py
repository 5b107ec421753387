"""The TFF learning process, from config: TFF's own builders and optimizers, nothing hand-written.

``algorithm``: ``fedavg`` (``build_weighted_fed_avg``), ``fedavg_unweighted``
(``build_unweighted_fed_avg``) and ``fedprox`` (``build_weighted_fed_prox``, with
``proximal_strength``). ``client_optimizer``/``server_optimizer``: SGD (with momentum), Adam,
Adagrad and Yogi from ``tff.learning.optimizers``. So FedAvg, FedAvgM, FedAdagrad, FedAdam and
FedYogi (Reddi et al. 2021) are each one override away.

Client weighting (weighted algorithms): ``num_examples`` (TFF's default: batches x batch size),
``num_tokens`` (targets that are not padding: TFF's Shakespeare baseline and the papers), or
``uniform``.

``aggregator`` (fedlm/federated/aggregators.py) is TFF's ``model_aggregator``. An unweighted one
(the DP aggregators) goes to TFF's unweighted builders, ``build_unweighted_fed_avg`` and
``build_unweighted_fed_prox``, which are the weighted ones with uniform client weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import (
    CLIENT_WEIGHTINGS,
    LOOP_IMPLEMENTATIONS,
    OPTIMIZER_FIELDS,
    AggregatorConfig,
    AlgorithmConfig,
    OptimizerConfig,
)
from fedlm.errors import ConfigError
from fedlm.federated.aggregators import build_aggregator

ModelFn = Callable[[], tff.learning.models.VariableModel]


def build_optimizer(cfg: OptimizerConfig, key: str) -> tff.learning.optimizers.Optimizer:
    """A ``tff.learning.optimizers`` optimizer; unset hyper-parameters keep TFF's defaults."""
    builders = {
        "sgd": tff.learning.optimizers.build_sgdm,
        "adam": tff.learning.optimizers.build_adam,
        "adagrad": tff.learning.optimizers.build_adagrad,
        "yogi": tff.learning.optimizers.build_yogi,
    }
    if cfg.name not in builders:
        raise ConfigError(f"{key}.name", cfg.name, tuple(builders))
    kwargs = {f: getattr(cfg, f) for f in OPTIMIZER_FIELDS[cfg.name] if getattr(cfg, f) is not None}
    return builders[cfg.name](learning_rate=cfg.learning_rate, **kwargs)


class TokenWeightedModel(tff.learning.models.VariableModel):
    """A TFF model whose batches count their non-padding targets as their examples.

    TFF 0.87's FedAvg and FedProx take only the ``ClientWeighting`` enum (no weight function), and
    weigh by the ``num_examples`` the model's ``forward_pass`` reports: reporting tokens there
    weighs clients by tokens, as TFF's Shakespeare baseline and the papers do. The metrics
    (``num_examples`` included) are the wrapped model's own, unchanged.
    """

    def __init__(self, model: tff.learning.models.VariableModel, ignore_id: int):
        self._model = model
        self._ignore_id = ignore_id

    @property
    def trainable_variables(self):
        return self._model.trainable_variables

    @property
    def non_trainable_variables(self):
        return self._model.non_trainable_variables

    @property
    def local_variables(self):
        return self._model.local_variables

    @property
    def input_spec(self):
        return self._model.input_spec

    def forward_pass(self, batch_input, training=True):
        output = self._model.forward_pass(batch_input, training=training)
        targets = batch_input[1]
        tokens = tf.reduce_sum(tf.cast(tf.not_equal(targets, self._ignore_id), tf.int32))
        return tff.learning.models.BatchOutput(
            loss=output.loss, predictions=output.predictions, num_examples=tokens
        )

    def predict_on_batch(self, batch_input, training=True):
        return self._model.predict_on_batch(batch_input, training=training)

    def report_local_unfinalized_metrics(self):
        return self._model.report_local_unfinalized_metrics()

    def metric_finalizers(self):
        return self._model.metric_finalizers()

    def reset_metrics(self):
        return self._model.reset_metrics()


def client_weighting(name: str, model_fn: ModelFn, ignore_id: int | None):
    """TFF's ``client_weighting`` for ``name``, and the model function that goes with it."""
    if name == "num_examples":
        return tff.learning.ClientWeighting.NUM_EXAMPLES, model_fn
    if name == "uniform":
        return tff.learning.ClientWeighting.UNIFORM, model_fn
    if name == "num_tokens":
        return tff.learning.ClientWeighting.NUM_EXAMPLES, (
            lambda: TokenWeightedModel(model_fn(), ignore_id)
        )
    raise ConfigError("algorithm.client_weighting", name, CLIENT_WEIGHTINGS)


def build_model_fn(
    keras_model_fn: Callable[[], tf.keras.Model],
    element_spec,
    loss_fn: Callable[[], tf.keras.losses.Loss],
    metrics_fn: Callable[[], Sequence[tf.keras.metrics.Metric]],
) -> ModelFn:
    """TFF's model function: a fresh Keras model wrapped by TFF's ``from_keras_model``."""

    def model_fn():
        return tff.learning.models.from_keras_model(
            keras_model_fn(), input_spec=element_spec, loss=loss_fn(), metrics=list(metrics_fn())
        )

    return model_fn


def build_learning_process(
    model_fn: ModelFn,
    algorithm: AlgorithmConfig,
    client_optimizer: OptimizerConfig,
    server_optimizer: OptimizerConfig,
    ignore_id: int | None = None,
    aggregator: AggregatorConfig | None = None,
    clients_per_round: int = 1,
) -> tff.learning.templates.LearningProcess:
    """The process ``algorithm`` names; ``ignore_id`` is the padding target (token weighting);
    ``aggregator`` (default: TFF's mean) combines the updates of ``clients_per_round`` clients."""
    if algorithm.loop_implementation not in LOOP_IMPLEMENTATIONS:
        raise ConfigError(
            "algorithm.loop_implementation", algorithm.loop_implementation, LOOP_IMPLEMENTATIONS
        )
    loop = tff.learning.LoopImplementation[algorithm.loop_implementation.upper()]
    client_opt = build_optimizer(client_optimizer, "client_optimizer")
    server_opt = build_optimizer(server_optimizer, "server_optimizer")
    weighting, weighted_model_fn = client_weighting(algorithm.client_weighting, model_fn, ignore_id)
    model_aggregator = None
    weighted_algorithm = algorithm.name != "fedavg_unweighted"
    if aggregator is not None:
        model_aggregator = build_aggregator(aggregator, clients_per_round, weighted_algorithm)
    unweighted = isinstance(model_aggregator, tff.aggregators.UnweightedAggregationFactory)
    if unweighted and weighted_algorithm and algorithm.client_weighting != "uniform":
        raise ConfigError(
            "algorithm.client_weighting",
            algorithm.client_weighting,
            f"'uniform' with aggregator.name={aggregator.name!r}, whose TFF aggregator is "
            "unweighted",
        )
    common = dict(
        client_optimizer_fn=client_opt,
        server_optimizer_fn=server_opt,
        model_aggregator=model_aggregator,
        loop_implementation=loop,
    )
    weighted = dict(common, client_weighting=weighting)
    algorithms = tff.learning.algorithms
    if algorithm.name == "fedavg_unweighted" or (unweighted and algorithm.name == "fedavg"):
        return algorithms.build_unweighted_fed_avg(model_fn, **common)
    if algorithm.name == "fedavg":
        return algorithms.build_weighted_fed_avg(weighted_model_fn, **weighted)
    if algorithm.name == "fedprox":
        strength = algorithm.proximal_strength
        if unweighted:
            return algorithms.build_unweighted_fed_prox(model_fn, strength, **common)
        return algorithms.build_weighted_fed_prox(weighted_model_fn, strength, **weighted)
    raise ConfigError("algorithm.name", algorithm.name, ("fedavg", "fedavg_unweighted", "fedprox"))
