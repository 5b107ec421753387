import os

import numpy as np
import pytest
import tensorflow as tf

from fedlm.errors import FedlmError
from fedlm.tracking.base import Checkpoint
from fedlm.tracking.checkpoints import CheckpointStore, checkpoint_model_weights, find_checkpoint


def assert_same_state(a, b):
    flat_a, flat_b = tf.nest.flatten(a), tf.nest.flatten(b)
    assert len(flat_a) == len(flat_b)
    for x, y in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_then_load_gives_back_state_sampler_round_and_run_id(tmp_path, make_state):
    store = CheckpointStore(tmp_path / "checkpoints", keep=3)
    sampler = {"rng": {"bit_generator": "PCG64", "state": {"state": 2**127 + 5, "inc": 3}}}
    store.save(Checkpoint(4, make_state(2.0), sampler, extra={"note": "x"}), run_id="abc")

    checkpoint, run_id = store.load(make_state(0.0))

    assert run_id == "abc"
    assert checkpoint.round_num == 4
    assert checkpoint.sampler_state == sampler  # 128-bit RNG state survives exactly
    assert checkpoint.extra == {"note": "x"}
    assert type(checkpoint.server_state) is type(make_state())
    assert_same_state(checkpoint.server_state, make_state(2.0))


def test_keeps_the_last_k_and_loads_the_latest(tmp_path, make_state):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    for round_num in range(1, 6):
        store.save(Checkpoint(round_num, make_state(round_num), {}), run_id="r")
    assert store.rounds() == [4, 5]
    checkpoint, _ = store.load(make_state())
    assert checkpoint.round_num == 5
    assert_same_state(checkpoint.server_state, make_state(5.0))
    older, _ = store.load(make_state(), round_num=4)
    assert_same_state(older.server_state, make_state(4.0))


def test_an_interrupted_write_leaves_the_last_good_checkpoint(tmp_path, make_state):
    store = CheckpointStore(tmp_path / "checkpoints", keep=1)
    store.save(Checkpoint(1, make_state(1.0), {}), run_id="r")
    broken = make_state(2.0)
    broken.finalizer["step"] = object()  # SavedModel cannot hold it: the write fails midway
    with pytest.raises(Exception):  # noqa: B017 (whatever TensorFlow raises)
        store.save(Checkpoint(2, broken, {}), run_id="r")

    assert store.rounds() == [1]
    # TFF's temporary folder, never renamed into place, is removed by the failed save itself; one
    # that a killed process left is removed by remove_partial.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["round_1"]
    (tmp_path / "checkpoints" / "round_2_temp1234" / "variables").mkdir(parents=True)
    assert [p.name for p in store.remove_partial()] == ["round_2_temp1234"]
    checkpoint, _ = store.load(make_state())
    assert checkpoint.round_num == 1
    assert_same_state(checkpoint.server_state, make_state(1.0))


def test_empty_or_missing_folder_has_no_checkpoint(tmp_path, make_state):
    store = CheckpointStore(tmp_path / "nowhere")
    assert store.rounds() == []
    assert store.latest_round() is None
    assert store.read_run() is None
    with pytest.raises(FileNotFoundError, match="nowhere"):
        store.load(make_state())
    assert not (tmp_path / "nowhere").exists()


def test_run_file_round_trip(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.write_run("run123", "sqlite:////x/mlflow.db")
    assert store.read_run() == {"run_id": "run123", "tracking_uri": "sqlite:////x/mlflow.db"}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["run.json"]


def test_model_weights_are_read_from_the_latest_checkpoint_of_a_run_folder(tmp_path, make_state):
    store = CheckpointStore(tmp_path / "run" / "checkpoints", keep=3)
    for round_num in (2, 3):
        store.save(Checkpoint(round_num, make_state(round_num), {}), run_id="r")

    for where in (tmp_path / "run", tmp_path / "run" / "checkpoints"):
        assert find_checkpoint(where) == tmp_path / "run" / "checkpoints" / "round_3"
    weights, round_num = checkpoint_model_weights(find_checkpoint(tmp_path / "run"))

    assert round_num == 3
    expected = make_state(3.0).global_model_weights.trainable
    assert len(weights) == len(expected)
    for got, want in zip(weights, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    older = find_checkpoint(tmp_path / "run" / "checkpoints" / "round_2")
    assert checkpoint_model_weights(older)[1] == 2
    assert find_checkpoint(tmp_path) is None


def test_a_lock_that_cannot_be_made_is_one_error_naming_it(tmp_path):
    (tmp_path / "a_file").write_text("")
    store = CheckpointStore(tmp_path / "a_file" / "checkpoints")
    with pytest.raises(FedlmError) as refused:
        store.hold("MLflow run r", "resume=true again")
    assert str(refused.value) == (
        f"MLflow run r cannot be taken by this process: {tmp_path}/a_file/checkpoints/run.lock: "
        "Not a directory (its checkpoint folder must be a folder this user can write)"
    )


def test_this_process_may_take_its_own_lock_again_and_give_it_back(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.hold("MLflow run r", "resume=true again")
    store.hold("MLflow run r", "resume=true again")  # the same process: no error
    assert (tmp_path / "checkpoints" / "run.lock").read_text().split()[0] == str(os.getpid())
    store.release()
    other = CheckpointStore(tmp_path / "checkpoints")
    other.hold("MLflow run r", "resume=true again")
    other.release()
