"""A temporary results directory (so a temporary SQLite store) for every tracking test."""

import collections
import shutil

import numpy as np
import pytest
import tensorflow_federated as tff


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """A new SQLite MLflow store, made once: MLflow's schema migrations take seconds."""
    from fedlm.tracking import store

    folder = tmp_path_factory.mktemp("empty_store")
    store.connect(f"sqlite:///{folder}/mlflow.db")
    return folder / "mlflow.db"


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch, empty_store):
    """Never the real results dir: FEDLM_RESULTS_DIR points at a temporary folder that holds a
    copy of an empty store."""
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(empty_store, folder / "mlflow.db")
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(folder))
    return folder


def server_state(scale: float = 1.0):
    """A learning-process state shaped like FedAvg's with a server Adam (built, not computed)."""
    weights = [np.full((3, 2), scale, np.float32), np.arange(2, dtype=np.float32) * scale]
    zeros = [np.zeros_like(w) for w in weights]
    return tff.learning.templates.LearningAlgorithmState(
        global_model_weights=tff.learning.models.ModelWeights(trainable=weights, non_trainable=[]),
        distributor=(),
        client_work=collections.OrderedDict(learning_rate=np.float32(0.5)),
        aggregator=collections.OrderedDict(value_sum_process=(), weight_sum_process=()),
        finalizer=collections.OrderedDict(
            learning_rate=np.float32(0.01),
            step=np.int64(7 * scale),
            accumulator=[z + scale for z in zeros],
            preconditioner=zeros,
        ),
    )


@pytest.fixture
def make_state():
    return server_state
