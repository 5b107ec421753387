"""Unrolled recurrent layers change nothing but speed: a round gives the same loss and weights."""

import numpy as np
import pytest
from shrunk import compose_train

from fedlm.config import ModelConfig
from fedlm.data.pipelines import build_pipeline
from fedlm.experiment import run
from fedlm.federated.task import Task

SMALL = [
    "model.cell=lstm",
    "tracking=none",
    "training.rounds=1",
    "training.max_batches_per_client=3",
    "eval.generate_length=0",
]


def one_round(tmp_path, *overrides):
    return run(compose_train(*SMALL, f"output_dir={tmp_path}", *overrides), say=lambda line: None)


# Two runs that each build a process (~15 s): the slow set's. The default suite checks the same
# numbers at the model (tests/models/test_architectures.py: an unrolled fixed-length model has
# the looped model's weights and outputs) and that the run's models are the unrolled ones (below).
@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["paper", "tutorial"])
def test_a_round_unrolled_gives_the_looped_rounds_loss_and_weights(tmp_path, pipeline):
    looped = one_round(tmp_path / "a", f"data.pipeline={pipeline}", "model.unroll=false")
    unrolled = one_round(tmp_path / "b", f"data.pipeline={pipeline}", "model.unroll=true")
    for key in ("train/loss", "train/accuracy", "eval/loss", "eval/accuracy"):
        assert unrolled.history[-1][key] == pytest.approx(looped.history[-1][key], abs=1e-5)
    assert unrolled.history[-1]["train/num_tokens"] == looped.history[-1]["train/num_tokens"]
    for a, b in zip(unrolled.final_weights, looped.final_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_training_and_evaluation_models_are_unrolled_and_the_exported_one_is_not():
    pipeline = build_pipeline("paper", seq_len=10, batch_size=2)
    task = Task(pipeline, ModelConfig(name="t", cell="lstm", embedding_dim=4, units=8, unroll=True))
    assert task.sequence_model().get_layer("lstm_0").unroll
    assert task.sequence_model().input_shape == (None, 10)
    assert not task.keras_model().get_layer("lstm_0").unroll  # export and generation
    assert task.keras_model().input_shape == (None, None)
