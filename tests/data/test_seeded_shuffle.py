"""The papers' pipeline shuffles each client by its seed as after ``tf.random.set_seed(seed)``,
without setting TensorFlow's global seed (which clears its kernel caches: fedlm/data/paper.py)."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from fedlm.data.inmemory import snippet_dataset
from fedlm.data.paper import PaperPipeline, seeded_shuffle, shuffle_seeds
from fedlm.rounds import client_seed

# 0 and 2**31 - 1 truncate to 0; client seeds are 32-bit (fedlm.rounds.client_seed)
SEEDS = [0, 1, 7, 2**31 - 1, 2**31, 2**32 - 1, client_seed(0, 1, 0), client_seed(3, 17, 111)]


def elements(dataset):
    return [x["snippets"].numpy().decode() for x in dataset]


def set_seed_shuffle(dataset, buffer_size, seed):
    """The shuffle as fedlm made it before: the global seed set, then TFF's unseeded shuffle."""
    tf.random.set_seed(seed)
    return dataset.shuffle(buffer_size)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_seeds_are_those_tf_random_set_seed_gives_an_unseeded_shuffle(seed):
    shuffled = set_seed_shuffle(snippet_dataset(["a"]), 2, seed)
    assert (int(shuffled._seed), int(shuffled._seed2)) == shuffle_seeds(seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_shuffle_gives_the_set_seed_order_every_iteration(seed):
    snippets = [f"snippet {i}" for i in range(40)]
    dataset = snippet_dataset(snippets)
    expected = set_seed_shuffle(dataset, 10, seed).repeat(3)
    actual = seeded_shuffle(dataset, 10, seed).repeat(3)
    assert elements(actual) == elements(expected)
    assert elements(actual) != snippets * 3  # it shuffled
    assert actual.element_spec == dataset.element_spec


def test_train_batches_equal_the_set_seed_pipelines_and_leave_the_global_seed_alone():
    pipeline = PaperPipeline(seq_len=5, batch_size=3, shuffle_buffer=4)
    rng = np.random.default_rng(0)
    snippets = ["".join(rng.choice(list("abcdefgh "), size=n)) for n in rng.integers(1, 30, 25)]
    for seed in SEEDS:
        tf.random.set_seed(123)
        actual = [
            (x.numpy().tolist(), y.numpy().tolist())
            for x, y in pipeline.train(snippet_dataset(snippets), local_epochs=2, seed=seed)
        ]
        draw = float(tf.random.uniform([]))
        expected_input = set_seed_shuffle(snippet_dataset(snippets), 4, seed).repeat(2)
        expected = [
            (x.numpy().tolist(), y.numpy().tolist())
            for x, y in pipeline._tokenize_and_batch(expected_input)
        ]
        assert actual == expected
        # The global seed is still 123: the pipeline set none, and drew no operation seed.
        tf.random.set_seed(123)
        assert draw == float(tf.random.uniform([]))


def test_a_client_dataset_builds_without_retracing():
    pipeline = PaperPipeline(seq_len=5, batch_size=3)
    data = collections.OrderedDict(snippets=tf.constant(["abc def"] * 5))
    for seed in SEEDS:
        pipeline.train(tf.data.Dataset.from_tensor_slices(data), seed=seed)
    assert pipeline._tokenize_and_batch.experimental_get_tracing_count() == 1
