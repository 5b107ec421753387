"""TFF's aggregators from config: measurements, bits sent, and refusals (the privacy accounting:
test_privacy.py)."""

import collections

import numpy as np
import pytest
import shrunk
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.checks import validate
from fedlm.cli.train import run_context  # noqa: F401  (registers the schema and resolvers)
from fedlm.config import AggregatorConfig, RuntimeConfig
from fedlm.errors import ConfigError
from fedlm.federated import runtime
from fedlm.federated.aggregators import (
    AggregatorMetrics,
    build_aggregator,
    clipped_count_stddev,
    encoded_bits,
    measurement_metrics,
)


def test_clipped_count_noise_is_tffs_default_unless_too_small_for_the_noise():
    adaptive = AggregatorConfig(name="dp_adaptive", noise_multiplier=0.5)
    assert clipped_count_stddev(adaptive, 100) == 5.0  # TFF's 0.05 x clients_per_round
    assert clipped_count_stddev(adaptive, 3) == 0.5  # TFF would refuse 0.15
    zero = AggregatorConfig(name="dp_adaptive", noise_multiplier=0.0)
    assert clipped_count_stddev(zero, 3) == 0.0
    factory = build_aggregator(adaptive, 3, weighted=False)  # TFF builds it
    assert isinstance(factory, tff.aggregators.UnweightedAggregationFactory)


def test_mean_passes_no_aggregator_so_tffs_default_mean_is_unchanged():
    assert build_aggregator(AggregatorConfig(name="mean"), 3, weighted=True) is None


def test_robust_measurements_become_the_clip_norm_and_fractions_of_the_round_clients():
    measurements = collections.OrderedDict(
        zeroing=collections.OrderedDict(
            clipping=collections.OrderedDict(mean_value=(), mean_weight=()),
            clipping_norm=0.75,
            clipped_count=3,
        ),
        zeroing_norm=20.5,
        zeroed_count=1,
        something_new=collections.OrderedDict(level=np.float32(2.0)),
    )
    assert measurement_metrics(measurements, clients=4) == {
        "aggregator/clip_norm": 0.75,
        "aggregator/clipped_fraction": 0.75,
        "aggregator/zeroing_norm": 20.5,
        "aggregator/zeroed_fraction": 0.25,
        "aggregator/something_new/level": 2.0,
    }
    adaptive = collections.OrderedDict(dp_query_metrics=collections.OrderedDict(clip=0.11), dp=())
    assert measurement_metrics(adaptive, clients=10) == {"aggregator/clip_norm": 0.11}
    # A Poisson round that drew nobody: no fractions of no clients, the norms as measured.
    assert measurement_metrics(measurements, clients=0) == {
        "aggregator/clip_norm": 0.75,
        "aggregator/zeroing_norm": 20.5,
        "aggregator/something_new/level": 2.0,
    }


def test_bits_per_client_are_what_tffs_quantizing_encoder_emits():
    # Left alone (20,000 elements or fewer): float32.
    assert encoded_bits([100]) == 3200
    assert encoded_bits([100, 200]) == 32 * 20000
    # Quantized to 8 bits, packed 28 bits to an int32, plus the float32 min and max:
    # 20,001 x 8 / 28 -> 5,715 int32; a 256 x 1024 LSTM kernel -> 74,899 int32.
    assert encoded_bits([20001]) == 32 * 5715 + 64
    assert encoded_bits([256, 1024]) == 32 * 74899 + 64
    metrics = AggregatorMetrics(AggregatorConfig(name="compression"), 3, 8, [[100], [20001]])
    assert metrics.round_metrics({}, 1, 3) == {"aggregator/bits_per_client": 3200 + 182944.0}


def compose_train(*overrides):
    return shrunk.compose_train("output_dir=.", *overrides, shrunk=False)


def test_choosing_a_dp_aggregator_sets_uniform_client_weights():
    cfg = compose_train("aggregator=dp_adaptive", "aggregator.noise_multiplier=0.5")
    assert cfg.algorithm.client_weighting == "uniform"
    assert cfg.aggregator.name == "dp_adaptive" and cfg.aggregator.zeroing is False
    validate(cfg)
    validate(compose_train("aggregator=dp_fixed", "sampler=poisson"))
    assert compose_train().aggregator == AggregatorConfig(name="mean")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["aggregator.noise_multiplier=0.5"], r"aggregator.noise_multiplier=0.5 .*null: .*'mean'"),
        (["aggregator=robust", "+aggregator.clip=1.0"], r"aggregator.clip=1.0 .*zeroing, clipping"),
        (["aggregator=secure"], r"aggregator.name='secure' .*Cannot embed a federated value"),
        (
            ["aggregator=dp_adaptive", "algorithm.client_weighting=num_tokens"],
            r"algorithm.client_weighting='num_tokens' .*'uniform' with aggregator.name='dp_adap",
        ),
        (
            ["aggregator=dp_fixed", "sampler=round_robin"],
            r"sampler.name='round_robin' .*'uniform' or 'poisson' with aggregator.name='dp_fixed'",
        ),
        (["aggregator=dp_fixed", "aggregator.clip=0"], r"aggregator.clip=0.0 .*> 0"),
        (["aggregator=dp_fixed", "aggregator.delta=1.5"], r"aggregator.delta=1.5 .*\(0, 1\)"),
        (
            ["aggregator=dp_adaptive", "aggregator.clipped_count_stddev=0.5"],
            r"aggregator.clipped_count_stddev=0.5 .*> noise_multiplier / 2 = 0.5",
        ),
        (
            [
                "aggregator=dp_adaptive",
                "aggregator.zeroing=true",
                "aggregator.noise_multiplier=0.5",
            ],
            r"aggregator.zeroing=True .*0.05 x clients_per_round = 0.15",
        ),
        (
            ["aggregator=dp_adaptive", "aggregator.zeroing=true", "aggregator.target_quantile=0.7"],
            r"aggregator.target_quantile=0.7 .*null with aggregator.zeroing=true",
        ),
    ],
)
def test_combinations_tff_cannot_build_or_fedlm_cannot_account_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_train(*overrides))


def test_tffs_local_runtime_still_cannot_run_a_secure_sum():
    """Why aggregator=secure is refused: when this starts passing, the refusal can go."""
    factory = tff.aggregators.SecureSumFactory(upper_bound_threshold=10.0)
    with runtime.execution_context(RuntimeConfig()):
        process = factory.create(tff.TensorType(np.float32, [2]))
        state = process.initialize()
        with pytest.raises(Exception, match="Cannot embed a federated value"):
            process.next(state, [np.ones(2, np.float32)])


def test_measure_norms_logs_the_clients_update_norms_and_changes_no_weight():
    """aggregator.measure_norms: the mean of the clients' update norms, measured on top of TFF's
    default mean, which aggregates as without it."""
    from fedlm.config import AlgorithmConfig, ModelConfig, OptimizerConfig
    from fedlm.data.pipelines import build_pipeline
    from fedlm.federated.process import build_learning_process
    from fedlm.federated.task import Task

    def client(targets):
        y = tf.constant(targets, tf.int64)
        x = tf.concat([tf.fill([y.shape[0], 1], tf.constant(88, tf.int64)), y[:, :-1]], axis=1)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(2)

    a, b = client([[5, 89, 0, 0], [7, 0, 0, 0]]), client([[9, 10, 11, 89]])
    task = Task(
        build_pipeline("paper", seq_len=4, batch_size=2),
        ModelConfig(name="tiny", cell="gru", embedding_dim=4, units=8, layers=1),
    )
    tf.keras.utils.set_random_seed(1)
    start = tff.learning.models.ModelWeights.from_model(task.keras_model())
    algorithm = AlgorithmConfig(name="fedavg", client_weighting="uniform")
    sgd = OptimizerConfig(name="sgd", learning_rate=0.5)

    def build(measure_norms):
        return build_learning_process(
            task.model_fn(a.element_spec),
            algorithm,
            sgd,
            OptimizerConfig(),
            ignore_id=0,
            aggregator=AggregatorConfig(name="mean", measure_norms=measure_norms),
            clients_per_round=2,  # the mean's build does not depend on it: one build serves all
        )

    def run(process, datasets):
        state = process.set_model_weights(process.initialize(), start)
        output = process.next(state, datasets)
        weights = process.get_model_weights(output.state).trainable
        return weights, measurement_metrics(output.metrics["aggregator"], len(datasets))

    with runtime.execution_context(RuntimeConfig()):
        plain, measured = build(False), build(True)
        plain_weights, plain_metrics = run(plain, [a, b])
        measured_weights, metrics = run(measured, [a, b])
        alone = [run(plain, [dataset])[0] for dataset in (a, b)]  # each client's own update
    for got, want in zip(measured_weights, plain_weights, strict=True):
        np.testing.assert_array_equal(got, want)
    assert "aggregator/client_norm_mean" not in plain_metrics

    def update_norm(after):
        deltas = [s - w for s, w in zip(start.trainable, after, strict=True)]
        return float(np.sqrt(sum(np.sum(np.square(d)) for d in deltas)))

    norms = [update_norm(after) for after in alone]
    assert metrics["aggregator/client_norm_mean"] == pytest.approx(np.mean(norms), rel=1e-4)
    assert metrics["aggregator/client_norm_std"] == pytest.approx(np.std(norms, ddof=1), rel=1e-3)
