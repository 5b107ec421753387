"""A round's clients ordered by work over side-by-side workers: shares of about equal work, and
the same round as one worker training them in the sampled order."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from linear_model import linear_model_fn

from fedlm.config import RuntimeConfig
from fedlm.federated import runtime


def shares(order, work, workers):
    """Each worker's total work when TFF splits ``order`` (indices into ``work``) over them."""
    out, first = [], 0
    for size in runtime.subround_sizes(len(order), workers):
        out.append(sum(work[i] for i in order[first : first + size]))
        first += size
    return out


def test_largest_first_balances_a_skewed_round_within_tffs_counts():
    # Batches per client of a sampled mcmahan2017-like round: a few large speakers among many
    # small ones, the large ones drawn first.
    work = [120, 95, 80, 3, 2, 5, 1, 4, 2, 3, 6, 1, 2, 2, 7, 1]
    order = runtime.balanced_order(work, 2)
    assert sorted(order) == list(range(len(work)))
    assert shares(list(range(len(work))), work, 2) == [310, 24]  # TFF's split, sampled order
    # Largest first onto the lighter share, each share at TFF's count of 8 clients: the three
    # large ones cannot be split evenly, so the second share takes 95 + 80 and the small rest.
    assert shares(order, work, 2) == [150, 184]


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_balanced_shares_are_within_one_client_of_even_and_shorter_than_the_sampled_orders(workers):
    rng = np.random.default_rng(workers)
    balanced_total = sampled_total = 0
    for _ in range(200):
        work = rng.integers(1, 200, rng.integers(1, 40)).tolist()
        order = runtime.balanced_order(work, workers)
        assert sorted(order) == list(range(len(work)))
        longest = max(shares(order, work, workers))
        used = len(runtime.subround_sizes(len(work), workers))
        assert longest <= sum(work) / used + max(work)
        balanced_total += longest
        sampled_total += max(shares(list(range(len(work))), work, workers))
    assert balanced_total < 0.95 * sampled_total


def test_two_workers_on_the_balanced_order_give_one_workers_round_on_the_sampled_order():
    process = tff.learning.algorithms.build_weighted_fed_avg(
        linear_model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    rng = np.random.default_rng(0)
    sizes = [12, 2, 9, 1, 4, 3]  # examples; batches of 2
    clients = [
        tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n).astype(np.int32))
        ).batch(2)
        for n in sizes
    ]
    work = [-(-n // 2) for n in sizes]

    def one_round(local_workers):
        with runtime.execution_context(RuntimeConfig(local_workers=local_workers)) as rt:
            order = rt.order(work)
            output = process.next(process.initialize(), [clients[i] for i in order])
            return order, process.get_model_weights(output.state).trainable, output.metrics

    one_order, one_weights, one_metrics = one_round(1)
    two_order, two_weights, two_metrics = one_round(2)
    assert one_order == list(range(6))  # one worker: the sampled order
    # Batches 6, 1, 5, 1, 2, 2: the sampled order splits 12 | 5, the balanced one 9 | 8.
    assert two_order == [0, 3, 5, 1, 2, 4] and shares(two_order, work, 2) == [9, 8]
    for one, two in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(two, one, atol=1e-6)
    train_one, train_two = one_metrics["client_work"]["train"], two_metrics["client_work"]["train"]
    assert train_two == pytest.approx(train_one)


def test_a_worker_training_two_clients_at_a_time_gives_the_round_of_all_at_once():
    """``runtime.max_concurrent_computation_calls=2`` (the worker's cap on client computations
    running at once) changes when clients train, not what the round computes."""
    process = tff.learning.algorithms.build_weighted_fed_avg(
        linear_model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    rng = np.random.default_rng(1)
    clients = [
        tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n).astype(np.int32))
        ).batch(2)
        for n in (7, 3, 10, 1, 5, 8)
    ]
    rounds = {}
    for calls in (-1, 2):
        with runtime.execution_context(RuntimeConfig(max_concurrent_computation_calls=calls)):
            output = process.next(process.initialize(), clients)
            rounds[calls] = (process.get_model_weights(output.state).trainable, output.metrics)
    for every, two in zip(rounds[-1][0], rounds[2][0], strict=True):
        np.testing.assert_array_equal(two, every)
    assert rounds[2][1]["client_work"]["train"] == rounds[-1][1]["client_work"]["train"]
