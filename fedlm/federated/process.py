"""The TFF learning process, from config: TFF's own builders and optimizers, nothing hand-written.

``algorithm``: ``fedavg`` (``build_weighted_fed_avg``), ``fedavg_unweighted``
(``build_unweighted_fed_avg``) and ``fedprox`` (``build_weighted_fed_prox``, with
``proximal_strength``). ``client_optimizer``/``server_optimizer``: SGD (with momentum), Adam,
Adagrad and Yogi from ``tff.learning.optimizers``. So FedAvg, FedAvgM, FedAdagrad, FedAdam and
FedYogi (Reddi et al. 2021) are each one override away.

Client weighting (weighted algorithms): ``num_examples`` (TFF's default: batches x batch size),
``num_tokens`` (targets that are not padding: TFF's Shakespeare baseline and the papers), or
``uniform``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import OPTIMIZER_FIELDS, AlgorithmConfig, OptimizerConfig
from fedlm.errors import ConfigError

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


def client_weighting(name: str):
    """TFF's ``client_weighting`` argument for ``name``."""
    if name == "num_examples":
        return tff.learning.ClientWeighting.NUM_EXAMPLES
    if name == "uniform":
        return tff.learning.ClientWeighting.UNIFORM
    if name == "num_tokens":
        # Called on the client's unfinalized metrics: NumTokens is a Sum, one variable.
        return lambda metrics: tf.cast(metrics["num_tokens"][0], tf.float32)
    raise ConfigError("algorithm.client_weighting", name, ("num_examples", "num_tokens", "uniform"))


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
) -> tff.learning.templates.LearningProcess:
    client_opt = build_optimizer(client_optimizer, "client_optimizer")
    server_opt = build_optimizer(server_optimizer, "server_optimizer")
    if algorithm.name == "fedavg":
        return tff.learning.algorithms.build_weighted_fed_avg(
            model_fn,
            client_optimizer_fn=client_opt,
            server_optimizer_fn=server_opt,
            client_weighting=client_weighting(algorithm.client_weighting),
        )
    if algorithm.name == "fedavg_unweighted":
        return tff.learning.algorithms.build_unweighted_fed_avg(
            model_fn, client_optimizer_fn=client_opt, server_optimizer_fn=server_opt
        )
    if algorithm.name == "fedprox":
        return tff.learning.algorithms.build_weighted_fed_prox(
            model_fn,
            proximal_strength=algorithm.proximal_strength,
            client_optimizer_fn=client_opt,
            server_optimizer_fn=server_opt,
            client_weighting=client_weighting(algorithm.client_weighting),
        )
    raise ConfigError("algorithm.name", algorithm.name, ("fedavg", "fedavg_unweighted", "fedprox"))


def build_evaluation_process(model_fn: ModelFn) -> tff.learning.templates.LearningProcess:
    """TFF's federated evaluation (``build_fed_eval``) of the same model."""
    return tff.learning.algorithms.build_fed_eval(model_fn)
