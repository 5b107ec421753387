"""Client data in memory: the same datasets as TFF's ClientData, the evaluation set made once."""

import numpy as np
import pytest
import tensorflow_federated as tff

from fedlm.data.clients import client_data_snippets
from fedlm.data.inmemory import preprocess_once, snippet_dataset
from fedlm.data.pipelines import build_pipeline

SYNTHETIC = tff.simulation.datasets.shakespeare.get_synthetic()
SNIPPETS = client_data_snippets(SYNTHETIC)
PIPELINES = {
    "tutorial": build_pipeline("tutorial", seq_len=10, batch_size=2),
    "tutorial_pad": build_pipeline("tutorial", seq_len=10, batch_size=3, pad=True),
    "paper": build_pipeline("paper", seq_len=5, batch_size=3, shuffle_buffer=4),
}


def batches(dataset):
    return [(x.numpy().tolist(), y.numpy().tolist()) for x, y in dataset]


def test_snippet_dataset_is_the_dataset_clientdata_gives():
    for client_id in SYNTHETIC.client_ids:
        ours = snippet_dataset(SNIPPETS[client_id])
        theirs = SYNTHETIC.create_tf_dataset_for_client(client_id)
        assert ours.element_spec == theirs.element_spec
        assert [x["snippets"].numpy() for x in ours] == [x["snippets"].numpy() for x in theirs]
    empty = snippet_dataset([])
    assert empty.element_spec == theirs.element_spec and list(empty) == []


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_training_batches_from_memory_equal_those_from_clientdata_seed_for_seed(name):
    pipeline = PIPELINES[name]
    for seed in (3, 4):
        for client_id in SYNTHETIC.client_ids:
            theirs = pipeline.train(
                SYNTHETIC.create_tf_dataset_for_client(client_id), local_epochs=2, seed=seed
            )
            ours = pipeline.train(snippet_dataset(SNIPPETS[client_id]), local_epochs=2, seed=seed)
            assert batches(ours) == batches(theirs)


@pytest.mark.parametrize("name", sorted(PIPELINES))
@pytest.mark.parametrize("parallel", [None, 1])
def test_preprocess_once_keeps_every_clients_sequences_in_order(name, parallel):
    pipeline = PIPELINES[name]
    client_ids = sorted(SYNTHETIC.client_ids, reverse=True)  # any order given is kept
    sequences = preprocess_once(pipeline.evaluate, SNIPPETS, client_ids, parallel=parallel)

    assert sequences.client_ids == tuple(client_ids)
    for c, client_id in enumerate(client_ids):
        expected = batches(pipeline.evaluate(snippet_dataset(SNIPPETS[client_id])))
        first, last = sequences.client_starts[c], sequences.client_starts[c + 1]
        rows_x = [row for x, _ in expected for row in x]
        rows_y = [row for _, y in expected for row in y]
        assert sequences.inputs[first:last].tolist() == rows_x
        assert sequences.targets[first:last].tolist() == rows_y
        # Per client, in the pipeline's own batch size: the pipeline's very batches.
        batch_size = pipeline.batch_size
        assert batches(sequences.client_batches(batch_size)[c]) == expected
    assert sequences.num_sequences == sequences.client_starts[-1]
    together = batches(sequences.batches(4))
    assert [row for x, _ in together for row in x] == sequences.inputs.tolist()
    assert all(len(x) == 4 for x, _ in together[:-1])


def test_preprocess_once_caps_batches_per_client_and_refuses_an_empty_set():
    pipeline = PIPELINES["paper"]
    capped = preprocess_once(
        lambda d: pipeline.evaluate(d, max_batches=1), SNIPPETS, SYNTHETIC.client_ids
    )
    assert np.all(np.diff(capped.client_starts) <= pipeline.batch_size)
    with pytest.raises(ValueError, match="every client is empty"):
        preprocess_once(pipeline.evaluate, {"A": [], "B": []}, ["A", "B"])


def test_traced_once_pipelines_build_a_client_dataset_without_tracing_again():
    for pipeline in (build_pipeline("tutorial"), build_pipeline("paper")):
        for seed in range(3):
            pipeline.train(snippet_dataset(["To be, or not to be"]), seed=seed)
        traced = [
            getattr(pipeline, name).experimental_get_tracing_count()
            for name in ("_to_sequences", "_to_batches", "_tokenize_and_batch")
            if hasattr(type(pipeline), name)
        ]
        assert traced and all(count == 1 for count in traced)
