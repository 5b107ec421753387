"""The server state kept on the worker between rounds gives TFF's own rounds, bit for bit."""

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from linear_model import linear_model_fn

from fedlm.config import RuntimeConfig
from fedlm.federated import resident, runtime


def build_process():
    return tff.learning.algorithms.build_weighted_fed_avg(
        linear_model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0, momentum=0.9),
    )


def clients(seed, sizes):
    rng = np.random.default_rng(seed)
    return [
        tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n).astype(np.int32))
        ).batch(2)
        for n in sizes
    ]


# Four rounds: three clients, three again, none (another executor: the state moves), two.
ROUNDS = [clients(0, (7, 3, 10)), clients(1, (1, 5, 8)), [], clients(2, (4, 6))]


def assert_same(a, b):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_state_on_the_worker_gives_tffs_rounds_and_is_read_back_when_asked():
    process = build_process()
    with runtime.execution_context(RuntimeConfig(local_workers=1)) as rt:
        start = process.initialize()
        assert rt.keeps_state is not None  # one local worker: the state stays there
        kept = rt.server_state(process, start)
        assert isinstance(kept, resident.StateOnWorker)
        assert_same(kept.value, start)  # before any round: the state it was given
        state = start
        for i, client_data in enumerate(ROUNDS):
            output = process.next(state, client_data)
            state = output.state
            metrics = kept.next(client_data)
            assert_same(metrics, output.metrics)
            if i in (0, 3):  # read back after some rounds only, the others stay on the worker
                assert type(kept.value) is type(state)
                assert_same(kept.value, state)
        assert_same(kept.value, state)
        np.testing.assert_array_equal(
            process.get_model_weights(kept.value).trainable[0],
            process.get_model_weights(state).trainable[0],
        )


def test_split_rounds_and_remote_workers_keep_the_state_in_this_process():
    process = build_process()
    with runtime.execution_context(RuntimeConfig(local_workers=2)) as rt:
        assert rt.keeps_state is None
        held = rt.server_state(process, process.initialize())
        assert isinstance(held, resident.StateInDriver)
        output = process.next(held.value, ROUNDS[0])
        held.next(ROUNDS[0])
        assert_same(held.value, output.state)
    assert runtime.Runtime(1).keeps_state is None  # e.g. remote workers: TFF's path
