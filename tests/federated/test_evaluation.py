"""Evaluation on a set made once: the same numbers as a Keras evaluate of each client's batches."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import EvalConfig, ModelConfig
from fedlm.data.clients import client_data_snippets
from fedlm.data.inmemory import snippet_dataset
from fedlm.data.pipelines import build_pipeline
from fedlm.federated.evaluation import CentralizedEvaluator, Evaluation, evaluation_sequences
from fedlm.federated.task import Task
from fedlm.models.metrics import TokenLoss

SYNTHETIC = tff.simulation.datasets.shakespeare.get_synthetic()
SNIPPETS = client_data_snippets(SYNTHETIC)
CLIENTS = sorted(SYNTHETIC.client_ids)
TINY = ModelConfig(name="tiny", cell="gru", embedding_dim=4, units=8, layers=1)


def per_client_keras_evaluate(task, weights):
    """Yesterday's evaluation: Keras evaluate of each client's batches, chained."""
    datasets = [task.pipeline.evaluate(snippet_dataset(SNIPPETS[c])) for c in CLIENTS]
    chained = datasets[0]
    for d in datasets[1:]:
        chained = chained.concatenate(d)
    model = task.compiled_keras_model()
    model.set_weights(weights)
    return model.evaluate(chained, verbose=0, return_dict=True), datasets


def random_weights(task, seed=5):
    tf.keras.utils.set_random_seed(seed)
    return task.keras_model().get_weights()


def evaluate_once(task, weights, batch_size):
    sequences = evaluation_sequences(EvalConfig(), task.pipeline, SNIPPETS, CLIENTS)
    evaluator = CentralizedEvaluator(task, sequences, batch_size)
    return evaluator(tff.learning.models.ModelWeights(trainable=weights, non_trainable=[]))


@pytest.mark.parametrize("batch_size", [2, 5])
def test_tutorial_pipeline_numbers_equal_yesterdays_evaluation(batch_size):
    """No padding in the tutorial pipeline: every number as before, whatever the batching."""
    task = Task(build_pipeline("tutorial", seq_len=10, batch_size=2), TINY)
    weights = random_weights(task)
    before, _ = per_client_keras_evaluate(task, weights)
    now = evaluate_once(task, weights, batch_size)
    assert now["accuracy"] == pytest.approx(before["accuracy"], abs=1e-7)
    assert now["num_tokens"] == before["num_tokens"]
    assert now["loss"] == pytest.approx(before["loss"], rel=1e-5)
    assert now["perplexity"] == pytest.approx(np.exp(now["loss"]))


def test_paper_pipeline_loss_is_the_mean_over_characters_whatever_the_batching():
    """Padding varies from batch to batch: the loss is now the mean over evaluated characters
    (Keras's own mean of per-batch means moved with the batching); accuracy and counts as before."""
    task = Task(build_pipeline("paper", seq_len=5, batch_size=3), TINY)
    weights = random_weights(task)
    before, datasets = per_client_keras_evaluate(task, weights)
    model = task.keras_model()
    model.set_weights(weights)
    total, count = 0.0, 0
    for dataset in datasets:
        for x, y in dataset:
            logits = model(x)
            keep = y.numpy() != 0
            losses = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            total += float(np.sum(losses.numpy()[keep]))
            count += int(keep.sum())
    for batch_size in (1, 64):  # and 3, the training batch, in Keras's evaluation above
        now = evaluate_once(task, weights, batch_size)
        assert now["loss"] == pytest.approx(total / count, rel=1e-5)
        assert now["accuracy"] == pytest.approx(before["accuracy"], abs=1e-7)
        assert now["accuracy_no_eos_oov"] == pytest.approx(before["accuracy_no_eos_oov"], abs=1e-7)
        assert now["num_tokens"] == before["num_tokens"] == count


def test_token_loss_ignores_targets_and_does_not_depend_on_the_batching():
    logits = tf.random.stateless_normal([4, 3, 6], seed=[1, 2])
    targets = tf.constant([[1, 2, 0], [3, 0, 0], [5, 5, 5], [0, 0, 4]], tf.int64)
    per_target = tf.keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    keep = targets.numpy() != 0
    expected = per_target.numpy()[keep].mean()
    whole = TokenLoss(ignore_ids=(0,))
    whole.update_state(targets, logits)
    halves = TokenLoss(ignore_ids=(0,))
    halves.update_state(targets[:1], logits[:1])
    halves.update_state(targets[1:], logits[1:])
    assert float(whole.result()) == pytest.approx(expected, rel=1e-6)
    assert float(halves.result()) == pytest.approx(expected, rel=1e-6)


def test_nothing_to_evaluate_builds_nothing():
    pipeline = build_pipeline("paper", seq_len=5, batch_size=3)
    off = EvalConfig(centralized=False, federated=False)
    assert evaluation_sequences(off, pipeline, SNIPPETS, CLIENTS) is None
    assert evaluation_sequences(EvalConfig(), pipeline, SNIPPETS, []) is None


def test_the_study_evaluation_batch_sizes_give_the_same_metrics_within_1e6():
    """Reddi et al.'s study evaluates at batch 1024 for speed: the same numbers as at 64."""
    task = Task(build_pipeline("paper", seq_len=5, batch_size=4), TINY)
    weights = random_weights(task, seed=11)
    at_64, at_1024 = (evaluate_once(task, weights, size) for size in (64, 1024))
    for key in ("loss", "accuracy", "accuracy_no_eos_oov", "bits_per_char"):
        assert at_1024[key] == pytest.approx(at_64[key], abs=1e-6), key
    assert at_1024["num_tokens"] == at_64["num_tokens"]


def test_the_runs_evaluation_names_the_centralized_metrics_and_is_empty_when_off():
    """Centralized only (federated needs TFF's execution context: test_experiment.py), at
    ``eval.batch_size`` or, when null, the pipeline's (training) batch size."""
    task = Task(build_pipeline("tutorial", seq_len=10, batch_size=2), TINY)
    weights = random_weights(task)
    sequences = evaluation_sequences(EvalConfig(), task.pipeline, SNIPPETS, CLIENTS)
    server = tff.learning.models.ModelWeights(trainable=weights, non_trainable=[])
    evaluation = Evaluation(EvalConfig(), task, sequences)
    assert evaluation.federated is None
    assert next(iter(evaluation.centralized.dataset))[0].shape.as_list() == [2, 10]
    at_5 = Evaluation(EvalConfig(batch_size=5), task, sequences).centralized.dataset
    assert next(iter(at_5))[0].shape.as_list() == [5, 10]
    metrics = evaluation(server)
    expected = evaluate_once(task, weights, batch_size=2)
    assert metrics.pop("eval/seconds") > 0
    assert metrics == {f"eval/{k}": pytest.approx(v, rel=1e-6) for k, v in expected.items()}
    assert Evaluation(EvalConfig(centralized=False), task, sequences)(server) == {}
    assert Evaluation(EvalConfig(), task, None)(server) == {}
