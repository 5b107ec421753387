"""The learning process from config: client weighting as TFF applies it, and the optimizers."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import AlgorithmConfig, ModelConfig, OptimizerConfig, RuntimeConfig
from fedlm.data.pipelines import build_pipeline
from fedlm.errors import ConfigError
from fedlm.federated import runtime
from fedlm.federated.process import (
    build_learning_process,
    build_optimizer,
    check_optimizer,
    model_weights,
)
from fedlm.federated.task import Task

TINY = ModelConfig(name="tiny", cell="gru", embedding_dim=4, units=8, layers=1)
PAD = 0


def client(targets: list[list[int]]) -> tf.data.Dataset:
    """One batch whose inputs are the targets shifted, as the paper pipeline makes them."""
    y = tf.constant(targets, tf.int64)
    x = tf.concat([tf.fill([y.shape[0], 1], tf.constant(88, tf.int64)), y[:, :-1]], axis=1)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(2)  # element shape [None, 4]


# Client A: 2 sequences, 3 real targets (the rest padding); client B: 1 sequence, 4 real targets.
A = client([[5, 89, PAD, PAD], [7, PAD, PAD, PAD]])
B = client([[9, 10, 11, 89]])
WEIGHTS = {"num_examples": (2, 1), "num_tokens": (3, 4), "uniform": (1, 1)}


def assert_read_from_the_state(process, state):
    """fedlm's ``model_weights`` reads the state's own weights, in this process: the values
    TFF's ``get_model_weights`` computation returns, bit for bit."""
    expected = process.get_model_weights(state)
    got = model_weights(process, state)
    assert got is state.global_model_weights
    for part in ("trainable", "non_trainable"):
        assert len(getattr(got, part)) == len(getattr(expected, part))
        for a, b in zip(getattr(got, part), getattr(expected, part), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("weighting", sorted(WEIGHTS))
def test_client_weighting_gives_the_expected_weights(weighting):
    task = Task(build_pipeline("paper", seq_len=4, batch_size=2), TINY)
    tf.keras.utils.set_random_seed(1)
    start = tff.learning.models.ModelWeights.from_model(task.keras_model())
    algorithm = AlgorithmConfig(name="fedavg", client_weighting=weighting)
    sgd = OptimizerConfig(name="sgd", learning_rate=0.5)
    with runtime.execution_context(RuntimeConfig()):
        process = build_learning_process(
            task.model_fn(A.element_spec), algorithm, sgd, OptimizerConfig(), ignore_id=PAD
        )
        state = process.set_model_weights(process.initialize(), start)
        assert_read_from_the_state(process, state)  # FedAvg's (the test below: the others')

        def after(datasets):
            output = process.next(state, datasets)
            assert_read_from_the_state(process, output.state)
            return model_weights(process, output.state).trainable, output.metrics

        alone_a, _ = after([A])
        alone_b, _ = after([B])
        both, metrics = after([A, B])
    weight_a, weight_b = WEIGHTS[weighting]
    for got, a, b in zip(both, alone_a, alone_b, strict=True):
        expected = (weight_a * a + weight_b * b) / (weight_a + weight_b)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    train = metrics["client_work"]["train"]
    assert train["num_examples"] == 3  # sequences, whatever the weighting
    assert train["num_tokens"] == 7


# FedAvg's (weighted) process: the test above, for each client weighting.
# fedavg_unweighted (~8 s a process of its own) in the slow set: FedAvg's read is the test above's.
@pytest.mark.parametrize(
    "algorithm", [pytest.param("fedavg_unweighted", marks=pytest.mark.slow), "fedprox"]
)
def test_model_weights_are_the_states_own_those_get_model_weights_computes(algorithm):
    """Read from the state in the driver: the values TFF's computation returns, bit for bit,
    after set_model_weights and after a round, without a call to the worker."""
    task = Task(build_pipeline("paper", seq_len=4, batch_size=2), TINY)
    tf.keras.utils.set_random_seed(2)
    start = tff.learning.models.ModelWeights.from_model(task.keras_model())
    sgd = OptimizerConfig(name="sgd", learning_rate=0.5)
    config = AlgorithmConfig(name=algorithm, proximal_strength=0.1)
    with runtime.execution_context(RuntimeConfig()):
        process = build_learning_process(
            task.model_fn(A.element_spec), config, sgd, OptimizerConfig(), ignore_id=PAD
        )
        started = process.set_model_weights(process.initialize(), start)
        for state in (started, process.next(started, [A, B]).state):
            assert_read_from_the_state(process, state)
        trained = model_weights(process, state).trainable
        assert any(not np.array_equal(a, b) for a, b in zip(trained, start.trainable, strict=True))


@pytest.mark.slow  # ~20 s; tests/models/test_metrics.py pins the loss itself, fast
def test_a_last_batch_of_padding_targets_trains_nothing_and_keeps_the_round_loss_finite():
    # A snippet of 80k - 1 characters ends in the chunk [eos, pad x 80]; alone in a client's last
    # batch, every target is padding. That batch must change nothing and count as loss 0 (TFF's
    # train loss is the mean of batch losses weighted by sequences), not make the round's NaN.
    task = Task(build_pipeline("paper", seq_len=4, batch_size=2), TINY)
    padding_only = tf.data.Dataset.from_tensors(
        (tf.constant([[89, PAD, PAD, PAD]], tf.int64), tf.constant([[PAD] * 4], tf.int64))
    )
    a_then_padding = A.concatenate(padding_only)
    tf.keras.utils.set_random_seed(2)
    start = tff.learning.models.ModelWeights.from_model(task.keras_model())
    sgd = OptimizerConfig(name="sgd", learning_rate=0.5)
    with runtime.execution_context(RuntimeConfig()):
        process = build_learning_process(
            task.model_fn(A.element_spec), AlgorithmConfig(), sgd, OptimizerConfig(), ignore_id=PAD
        )
        state = process.set_model_weights(process.initialize(), start)
        rounds = [process.next(state, [client]) for client in (A, a_then_padding)]
        alone, with_padding = [process.get_model_weights(r.state).trainable for r in rounds]
    for got, expected in zip(with_padding, alone, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    loss_alone, loss_with_padding = [r.metrics["client_work"]["train"]["loss"] for r in rounds]
    assert np.isfinite(loss_with_padding)
    assert loss_with_padding == pytest.approx(loss_alone * 2 / 3, rel=1e-5)


def test_optimizers_take_their_hyper_parameters_and_tffs_defaults():
    adam = build_optimizer(OptimizerConfig(name="adam", learning_rate=0.01, epsilon=1e-3), "x")
    hparams = adam.get_hparams(adam.initialize(tf.TensorSpec([1], tf.float32)))
    assert hparams["learning_rate"] == pytest.approx(0.01)
    assert hparams["epsilon"] == pytest.approx(1e-3)
    assert hparams["beta_1"] == pytest.approx(0.9)  # TFF's default, left unset
    sgdm = build_optimizer(OptimizerConfig(name="sgd", learning_rate=1.0, momentum=0.9), "x")
    assert sgdm.get_hparams(sgdm.initialize(tf.TensorSpec([1], tf.float32)))["momentum"] == 0.9


def test_unknown_optimizer_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"server_optimizer.name='rmsprop' .*'yogi'"):
        check_optimizer(OptimizerConfig(name="rmsprop"), "server_optimizer")
