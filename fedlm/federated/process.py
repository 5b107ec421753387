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

The names of each group are the registries below, and :func:`check_process` their check. TensorFlow
is imported by the builders, not here, so ``fedlm-train`` checks a config without it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, NamedTuple

from fedlm.config import AlgorithmConfig, OptimizerConfig, TrainConfig, at_least, one_of, positive
from fedlm.errors import ConfigError
from fedlm.federated.aggregators import build_aggregator

if TYPE_CHECKING:
    import tensorflow_federated as tff

    from fedlm.config import AggregatorConfig
    from fedlm.federated.task import ModelFn


class Optimizer(NamedTuple):
    builder: str  # in tff.learning.optimizers
    takes: tuple[str, ...]  # the OptimizerConfig keys besides learning_rate; null: TFF's default


# client_optimizer.name and server_optimizer.name (conf/client_optimizer/, conf/server_optimizer/)
OPTIMIZERS = {
    "sgd": Optimizer("build_sgdm", ("momentum",)),
    "adam": Optimizer("build_adam", ("beta_1", "beta_2", "epsilon")),
    "adagrad": Optimizer("build_adagrad", ("initial_preconditioner_value", "epsilon")),
    "yogi": Optimizer(
        "build_yogi", ("beta_1", "beta_2", "epsilon", "initial_preconditioner_value")
    ),
}


class Algorithm(NamedTuple):
    weighted: bool  # weighs the clients (algorithm.client_weighting); else each counts the same
    proximal: bool  # FedProx's proximal term (algorithm.proximal_strength)


# algorithm.name (conf/algorithm/): TFF's build_{weighted,unweighted}_fed_{avg,prox}
ALGORITHMS = {
    "fedavg": Algorithm(weighted=True, proximal=False),
    "fedavg_unweighted": Algorithm(weighted=False, proximal=False),
    "fedprox": Algorithm(weighted=True, proximal=True),
}


class Weighting(NamedTuple):
    tff: str  # the tff.learning.ClientWeighting
    # The model reports its non-padding targets as its examples, which TFF's NUM_EXAMPLES then
    # weighs by (fedlm.federated.task.TokenWeightedModel)
    by_tokens: bool = False


# algorithm.client_weighting
CLIENT_WEIGHTINGS = {
    "num_examples": Weighting("NUM_EXAMPLES"),
    "num_tokens": Weighting("NUM_EXAMPLES", by_tokens=True),
    "uniform": Weighting("UNIFORM"),
}
LOOP_IMPLEMENTATIONS = ("dataset_reduce", "dataset_iterator")  # tff.learning.LoopImplementation


def check_optimizer(opt: OptimizerConfig, key: str) -> None:
    """``<key>.*``: an optimizer of :data:`OPTIMIZERS` with only the keys it takes."""
    one_of(f"{key}.name", opt.name, OPTIMIZERS)
    positive(f"{key}.learning_rate", opt.learning_rate)
    takes = OPTIMIZERS[opt.name].takes
    for name in (f.name for f in fields(opt) if f.name not in ("name", "learning_rate")):
        value = getattr(opt, name)
        if value is None:
            continue
        if name not in takes:
            allowed = ", ".join(takes) or "none"
            raise ConfigError(f"{key}.{name}", value, f"null: {opt.name} takes only {allowed}")
        if name in ("beta_1", "beta_2", "momentum") and not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}.{name}", value, "a number in [0, 1)")
        if name == "epsilon":
            positive(f"{key}.{name}", value)
        at_least(f"{key}.{name}", value, 0.0)


def check_process(cfg: TrainConfig) -> None:
    """The optimizers and the algorithm (the aggregator: :func:`aggregators.check_aggregator`)."""
    check_optimizer(cfg.client_optimizer, "client_optimizer")
    check_optimizer(cfg.server_optimizer, "server_optimizer")
    algorithm = cfg.algorithm
    one_of("algorithm.name", algorithm.name, ALGORITHMS)
    one_of("algorithm.client_weighting", algorithm.client_weighting, CLIENT_WEIGHTINGS)
    at_least("algorithm.proximal_strength", algorithm.proximal_strength, 0.0)
    one_of("algorithm.loop_implementation", algorithm.loop_implementation, LOOP_IMPLEMENTATIONS)


def build_optimizer(cfg: OptimizerConfig, key: str) -> tff.learning.optimizers.Optimizer:
    """A ``tff.learning.optimizers`` optimizer; unset hyper-parameters keep TFF's defaults."""
    import tensorflow_federated as tff

    builder, takes = OPTIMIZERS[cfg.name]
    kwargs = {f: getattr(cfg, f) for f in takes if getattr(cfg, f) is not None}
    return getattr(tff.learning.optimizers, builder)(learning_rate=cfg.learning_rate, **kwargs)


def client_weighting(name: str, model_fn: ModelFn, ignore_id: int | None):
    """TFF's ``client_weighting`` for ``name``, and the model function that goes with it."""
    import tensorflow_federated as tff

    from fedlm.federated.task import TokenWeightedModel

    kind = CLIENT_WEIGHTINGS[name]
    weighting = tff.learning.ClientWeighting[kind.tff]
    if not kind.by_tokens:
        return weighting, model_fn
    return weighting, lambda: TokenWeightedModel(model_fn(), ignore_id)


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
    ``aggregator`` (default: TFF's mean) combines the updates of ``clients_per_round`` clients.
    Every value as :func:`fedlm.checks.validate` checked it."""
    import tensorflow_federated as tff

    kind = ALGORITHMS[algorithm.name]
    client_opt = build_optimizer(client_optimizer, "client_optimizer")
    server_opt = build_optimizer(server_optimizer, "server_optimizer")
    model_aggregator = None
    if aggregator is not None:
        model_aggregator = build_aggregator(aggregator, clients_per_round, kind.weighted)
    common = dict(
        client_optimizer_fn=client_opt,
        server_optimizer_fn=server_opt,
        model_aggregator=model_aggregator,
        loop_implementation=tff.learning.LoopImplementation[algorithm.loop_implementation.upper()],
    )
    # TFF's DP aggregators are unweighted: the weighted algorithms' unweighted builders take them.
    unweighted = isinstance(model_aggregator, tff.aggregators.UnweightedAggregationFactory)
    algorithms = tff.learning.algorithms
    proximal = (algorithm.proximal_strength,) if kind.proximal else ()
    if not kind.weighted or unweighted:
        build = (
            algorithms.build_unweighted_fed_prox
            if kind.proximal
            else algorithms.build_unweighted_fed_avg
        )
        return build(model_fn, *proximal, **common)
    weighting, weighted_model_fn = client_weighting(algorithm.client_weighting, model_fn, ignore_id)
    build = (
        algorithms.build_weighted_fed_prox if kind.proximal else algorithms.build_weighted_fed_avg
    )
    return build(weighted_model_fn, *proximal, client_weighting=weighting, **common)


def model_weights(process: tff.learning.templates.LearningProcess, state):
    """The global model weights of ``state``, read from it in this process.

    TFF's ``process.get_model_weights(state)`` is a computation: calling it sends the whole state
    to a worker and its weights back (for the tutorial's GRU, 16 MB each way; the round itself
    already moved them once each way). TFF's learning algorithms keep them as the state's
    ``global_model_weights`` (``tff.learning.templates.LearningAlgorithmState``), the very values
    that computation returns; another kind of state goes through ``process.get_model_weights``.
    """
    import tensorflow_federated as tff

    weights = getattr(state, "global_model_weights", None)
    if isinstance(state, tff.learning.templates.LearningAlgorithmState) and isinstance(
        weights, tff.learning.models.ModelWeights
    ):
        return weights
    return process.get_model_weights(state)
