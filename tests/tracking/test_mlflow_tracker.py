"""The MLflow tracker against a temporary SQLite store, driven as the round loop drives it."""

import dataclasses
import errno
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
from mlflow.entities import Param

from fedlm.config import ModelConfig, TrackingConfig, TrainConfig
from fedlm.errors import ConfigError, DiskFullError, RunInUseError
from fedlm.tracking import Checkpoint, Tracker, build_tracker, run_info
from fedlm.tracking.mlflow_tracker import MlflowTracker
from fedlm.tracking.store import TrackingError

CONTEXT = {
    "hydra.mode": "RUN",
    "hydra.output_dir": "/somewhere",
    "hydra.sweep_dir": "multirun/x",
    "hydra.job_num": "0",
    "hydra.overrides": "training.rounds=4",
    "hydra.choices": "data: synthetic\n",
}


def config(tmp_path, **changes) -> TrainConfig:
    cfg = TrainConfig(output_dir=str(tmp_path / "out"))
    cfg.training.rounds = 4
    cfg.tracking = TrackingConfig(experiment_name="tests", keep_checkpoints=2)
    return dataclasses.replace(cfg, **changes)


def round_metrics(round_num: int) -> dict[str, float]:
    return {
        "train/loss": 4.0 - round_num / 10,
        "train/accuracy": round_num / 100,
        "eval/loss": 4.1 - round_num / 10,
        "eval/accuracy": round_num / 90,
    }


def play_rounds(tracker, rounds, make_state, checkpoint_after=()):
    for round_num in rounds:
        tracker.log_metrics(round_metrics(round_num), step=round_num)
        tracker.log_text("generated_text", f"text {round_num}", round_num)
        if round_num in checkpoint_after:
            sampler = {"rng": {"state": round_num}}
            tracker.save_checkpoint(Checkpoint(round_num, make_state(round_num), sampler))


def steps(client, run_id, key):
    return [m.step for m in client.get_metric_history(run_id, key)]


def artifacts(client, run_id, path=None):
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return sorted(found)


def test_tracking_off_is_the_do_nothing_tracker(tmp_path):
    cfg = config(tmp_path, tracking=TrackingConfig(enabled=False))
    assert type(build_tracker(cfg)) is Tracker
    with pytest.raises(ConfigError, match="resume=True is not allowed"):
        build_tracker(dataclasses.replace(cfg, resume=True))


def test_a_run_records_params_tags_metrics_text_config_and_plots(tmp_path, make_state):
    cfg = config(tmp_path)
    tracker = build_tracker(cfg, CONTEXT)
    assert isinstance(tracker, MlflowTracker)
    tracker.start(dataclasses.asdict(cfg))
    assert tracker.restore(make_state()) is None
    play_rounds(tracker, range(0, 5), make_state, checkpoint_after=(2, 4))
    (tmp_path / "out" / "train.log").write_text("round 4/4 | train: loss=3.600\n")
    tracker.finish("FINISHED")

    client = tracker.client
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    params = run.data.params
    assert params["training.rounds"] == "4"
    assert params["tracking.uri"] == "null"
    assert params["eval.prompt"] == cfg.eval.prompt
    assert "resume" not in params and "output_dir" not in params
    assert params == run_info.params(dataclasses.asdict(cfg))
    assert "server_optimizer.beta_1" not in params  # sgd takes no beta_1
    tags = run.data.tags
    for key in (
        "mlflow.source.git.commit",
        "fedlm.git.dirty",
        "fedlm.version",
        "fedlm.tff_version",
        "fedlm.tf_version",
        "fedlm.host",
        "fedlm.hydra.output_dir",
    ):
        assert tags[key], key
    assert "fedlm.hydra.sweep_dir" not in tags and "fedlm.hydra.job_num" not in tags  # one run
    assert (tags["mlflow.source.name"], tags["mlflow.source.type"]) == ("fedlm-train", "LOCAL")
    assert run.info.user_id == tags["mlflow.user"] != "unknown"  # the runs table's User
    assert tags["mlflow.note.content"] == (
        "Reproduce with:\n\n    uv run fedlm-train training.rounds=4\n\n"
        "Overrides:\n- `training.rounds=4`\n"
    )
    assert tags["fedlm.data.pipeline"] == "tutorial"
    assert tags["fedlm.checkpoint_dir"] == str((tmp_path / "out" / "checkpoints").resolve())
    assert tags["fedlm.checkpoint_round"] == "4"
    assert tags["mlflow.runName"] == "rounds=4"
    for key in round_metrics(0):
        assert steps(client, tracker.run_id, key) == [0, 1, 2, 3, 4]
    assert client.get_metric_history(tracker.run_id, "eval/loss")[3].value == pytest.approx(3.8)
    summary = {k: v for k, v in run.data.metrics.items() if k.startswith("summary/")}
    assert summary == {
        "summary/final_eval_accuracy": pytest.approx(4 / 90),
        "summary/best_eval_accuracy": pytest.approx(4 / 90),
        "summary/best_round": 4.0,
    }
    assert steps(client, tracker.run_id, "summary/best_round") == [4]
    assert artifacts(client, tracker.run_id) == [
        "config.yaml",
        *[f"generated_text/round_{r:04d}.txt" for r in range(5)],
        "plots/accuracy.png",
        "plots/loss.png",
        "train.log",
    ]
    log = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/train.log")
    assert log == "round 4/4 | train: loss=3.600\n"
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/generated_text/round_0003.txt")
    assert text == "text 3"
    assert tracker.checkpoints.rounds() == [2, 4]
    assert " mlflow ui --backend-store-uri sqlite:///" in tracker.where()


def test_params_come_in_batches_of_at_most_100(tmp_path):
    cfg = config(tmp_path)
    cfg.sampler.name = "fixed"
    cfg.sampler.client_ids = [f"CLIENT_{i}" for i in range(200)]  # a long value is cut, not refused
    tracker = build_tracker(cfg, {})
    config_dict = dataclasses.asdict(cfg)
    config_dict["extra"] = {f"key_{i}": i for i in range(150)}  # more than one batch
    tracker.start(config_dict)
    params = tracker.client.get_run(tracker.run_id).data.params
    assert len(params) > 200
    assert params["extra.key_149"] == "149"
    assert len(params["sampler.client_ids"]) == 500


def crashed_run(tmp_path, make_state):
    """Rounds 0-3 logged, checkpoints after 1 and 2, killed before checkpointing round 3."""
    cfg = config(tmp_path)
    tracker = build_tracker(cfg, CONTEXT)
    tracker.start(dataclasses.asdict(cfg))
    play_rounds(tracker, range(0, 4), make_state, checkpoint_after=(1, 2))
    tracker.finish("KILLED")
    return cfg, tracker.run_id


def test_resume_true_continues_the_same_run_and_logs_every_step_once(tmp_path, make_state):
    cfg, run_id = crashed_run(tmp_path, make_state)
    client = mlflow.MlflowClient(MlflowTracker(cfg).uri)
    assert client.get_run(run_id).info.status == "KILLED"

    tracker = build_tracker(dataclasses.replace(cfg, resume=True), CONTEXT)
    tracker.start(dataclasses.asdict(cfg))
    assert tracker.run_id == run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    checkpoint = tracker.restore(make_state())
    assert checkpoint.round_num == 2
    assert checkpoint.sampler_state == {"rng": {"state": 2}}
    np.testing.assert_array_equal(
        checkpoint.server_state.global_model_weights.trainable[0],
        make_state(2).global_model_weights.trainable[0],
    )
    # The loop repeats round 3 (logged before the crash) and goes on with round 4.
    tracker.log_metrics({k: v + 100 for k, v in round_metrics(3).items()}, step=3)
    play_rounds(tracker, [4], make_state, checkpoint_after=(4,))
    tracker.finish("FINISHED")

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in round_metrics(0):
        assert steps(client, run_id, key) == [0, 1, 2, 3, 4]
    assert client.get_metric_history(run_id, "eval/loss")[3].value == pytest.approx(3.8)
    assert run.data.tags["fedlm.resumes"] == "1"
    assert run.data.tags["fedlm.resumed_from_round"] == "2"
    assert tracker.checkpoints.rounds() == [2, 4]  # keep_checkpoints=2


def test_a_run_logged_with_every_key_resumes_after_the_params_were_cut(tmp_path, make_state):
    """Runs started before fedlm left out the keys of choices not made (the reddi2021 runs) hold
    every config key as a param, nulls included; they resume, and keep their params."""
    cfg, run_id = crashed_run(tmp_path, make_state)
    client = mlflow.MlflowClient(MlflowTracker(cfg).uri)
    flat = run_info.flatten(dataclasses.asdict(cfg))
    every_key = {k: v for k, v in flat.items() if k not in run_info.NOT_PARAMS}
    client.log_batch(run_id, params=[Param(k, v) for k, v in every_key.items()][:100])
    client.log_batch(run_id, params=[Param(k, v) for k, v in every_key.items()][100:])
    assert client.get_run(run_id).data.params["server_optimizer.beta_1"] == "null"

    tracker = build_tracker(dataclasses.replace(cfg, resume=run_id), {})
    tracker.start(dataclasses.asdict(cfg))
    assert tracker.restore(make_state()).round_num == 2
    play_rounds(tracker, [3, 4], make_state, checkpoint_after=(4,))
    tracker.finish("FINISHED")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == every_key

    changed = dataclasses.replace(cfg, resume=run_id, seed=5)
    with pytest.raises(ConfigError, match="seed: 0 -> 5"):
        build_tracker(changed, {}).start(dataclasses.asdict(changed))


def test_resume_by_run_id_from_another_output_dir(tmp_path, make_state):
    cfg, run_id = crashed_run(tmp_path, make_state)
    other = dataclasses.replace(cfg, resume=run_id, output_dir=str(tmp_path / "elsewhere"))
    tracker = build_tracker(other, {})
    tracker.start(dataclasses.asdict(other))
    assert tracker.run_id == run_id
    assert tracker.restore(make_state()).round_num == 2
    assert tracker.checkpoints.directory == tmp_path / "out" / "checkpoints"


def test_resume_before_the_first_checkpoint_starts_again_in_the_same_run(tmp_path, make_state):
    cfg = config(tmp_path)
    tracker = build_tracker(cfg, {})
    tracker.start(dataclasses.asdict(cfg))
    play_rounds(tracker, [0, 1], make_state)  # killed before any checkpoint
    resumed = build_tracker(dataclasses.replace(cfg, resume=True), {})
    resumed.start(dataclasses.asdict(cfg))
    assert resumed.run_id == tracker.run_id
    assert resumed.restore(make_state()) is None
    play_rounds(resumed, [0, 1, 2], make_state)
    assert steps(resumed.client, resumed.run_id, "train/loss") == [0, 1, 2]


def test_nothing_to_resume_names_the_output_dir(tmp_path):
    cfg = config(tmp_path, resume=True)
    tracker = build_tracker(cfg, {})
    with pytest.raises(ConfigError, match=str(tmp_path / "out" / "checkpoints")):
        tracker.start(dataclasses.asdict(cfg))


def test_unknown_run_id_is_named(tmp_path):
    cfg = config(tmp_path, resume="0123456789abcdef")
    with pytest.raises(ConfigError, match="0123456789abcdef is not there"):
        build_tracker(cfg, {}).start(dataclasses.asdict(cfg))


def test_resuming_a_finished_run_changes_nothing(tmp_path, make_state, capfd):
    cfg = config(tmp_path)
    tracker = build_tracker(cfg, {})
    tracker.start(dataclasses.asdict(cfg))
    play_rounds(tracker, [0, 1, 2, 3, 4], make_state, checkpoint_after=(4,))
    tracker.finish("FINISHED")
    before = tracker.client.get_run(tracker.run_id)

    resumed_cfg = dataclasses.replace(cfg, resume=True)
    resumed = build_tracker(resumed_cfg, {})
    resumed.start(dataclasses.asdict(resumed_cfg))
    assert f"MLflow run {tracker.run_id} finished all its rounds" in capfd.readouterr().err
    assert resumed.restore(make_state()).round_num == 4  # the loop has no round left to run
    resumed.finish("FINISHED")
    after = tracker.client.get_run(tracker.run_id)
    assert after.info.status == "FINISHED"
    assert after.info.end_time == before.info.end_time
    assert after.data.tags == before.data.tags


# Takes the run that argv[2] names (output dir argv[1]) for this process, says so, and holds it
# until stdin closes.
HOLDER = """
import sys
from fedlm.config import TrackingConfig, TrainConfig
from fedlm.tracking import build_tracker
cfg = TrainConfig(output_dir=sys.argv[1], resume=sys.argv[2])
cfg.tracking = TrackingConfig(experiment_name="tests", keep_checkpoints=2)
assert build_tracker(cfg, {}).claim()
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_run_that_another_process_writes_is_refused_and_left_as_it_was(tmp_path, make_state):
    cfg, run_id = crashed_run(tmp_path, make_state)
    client = mlflow.MlflowClient(MlflowTracker(cfg).uri)
    before = client.get_run(run_id)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, cfg.output_dir, run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        resumed_cfg = dataclasses.replace(cfg, resume=True)
        with pytest.raises(RunInUseError) as refused:
            build_tracker(resumed_cfg, {}).start(dataclasses.asdict(resumed_cfg))
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
    lock = tmp_path / "out" / "checkpoints" / "run.lock"
    assert str(refused.value) == (
        f"MLflow run {run_id} is being written by process {holder.pid} (lock {lock}): a run has "
        f"one writer. Wait for that process to end, or stop it (kill {holder.pid}), then "
        "resume=true again"
    )
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == ("KILLED", before.info.end_time)
    assert after.data.tags == before.data.tags
    for key in round_metrics(0):
        assert steps(client, run_id, key) == [0, 1, 2, 3]

    resumed = build_tracker(resumed_cfg, {})  # the holder is gone: the run can be resumed
    resumed.start(dataclasses.asdict(resumed_cfg))
    assert client.get_run(run_id).info.status == "RUNNING"
    resumed.finish("KILLED")


def test_an_unreadable_newest_checkpoint_is_named_and_resume_falls_back(
    tmp_path, make_state, capfd
):
    cfg, run_id = crashed_run(tmp_path, make_state)
    folder = tmp_path / "out" / "checkpoints"
    for file in (folder / "round_2").rglob("*"):
        if file.is_file():  # every file of the newest checkpoint cut to half its size
            os.truncate(file, file.stat().st_size // 2)
    capfd.readouterr()

    resumed_cfg = dataclasses.replace(cfg, resume=True)
    resumed = build_tracker(resumed_cfg, {})
    resumed.start(dataclasses.asdict(resumed_cfg))
    checkpoint = resumed.restore(make_state())
    assert checkpoint.round_num == 1
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"fedlm: warning: checkpoint {folder}/round_2 cannot be read (")
    assert err[1] == (
        f"fedlm: warning: resuming from {folder}/round_1, the newest readable checkpoint "
        f"(set aside: {folder}/unreadable_round_2)"
    )
    play_rounds(resumed, [2, 3, 4], make_state, checkpoint_after=(2, 4))  # round 2 again
    resumed.finish("FINISHED")
    assert resumed.checkpoints.rounds() == [2, 4]
    assert steps(resumed.client, run_id, "train/loss") == [0, 1, 2, 3, 4]


def test_a_full_disk_under_the_checkpoints_is_one_line_and_leaves_no_temporary_folder(
    tmp_path, make_state, monkeypatch
):
    import tensorflow as tf

    cfg, run_id = crashed_run(tmp_path, make_state)
    folder = tmp_path / "out" / "checkpoints"
    resumed_cfg = dataclasses.replace(cfg, resume=True)
    resumed = build_tracker(resumed_cfg, {})
    resumed.start(dataclasses.asdict(resumed_cfg))
    save = tf.saved_model.save

    def save_until_the_disk_is_full(module, path, **kwargs):  # the OS boundary, half-way
        save(module, path, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{path}/saved_model.pb")

    monkeypatch.setattr(tf.saved_model, "save", save_until_the_disk_is_full)
    with pytest.raises(DiskFullError) as full:
        resumed.save_checkpoint(Checkpoint(3, make_state(3), {"rng": {"state": 3}}))
    assert str(full.value) == (
        f"writing the checkpoint {folder}/round_3: No space left on device (kept: round_1, round_2)"
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "round_1",
        "round_2",
        "run.json",
        "run.lock",
    ]
    assert resumed.checkpoints.load(make_state())[0].round_num == 2


def test_resume_with_a_different_config_is_refused(tmp_path, make_state):
    cfg, run_id = crashed_run(tmp_path, make_state)
    changed = dataclasses.replace(cfg, resume=True, seed=5)
    with pytest.raises(ConfigError, match="seed: 0 -> 5"):
        build_tracker(changed, {}).start(dataclasses.asdict(changed))


def test_a_new_run_refuses_a_folder_holding_another_runs_checkpoints(tmp_path, make_state):
    cfg, run_id = crashed_run(tmp_path, make_state)
    with pytest.raises(ConfigError, match=f"true to continue run {run_id} "):
        build_tracker(cfg, {}).start(dataclasses.asdict(cfg))


def test_failed_run_is_marked_failed_and_its_checkpoint_stays(tmp_path, make_state):
    cfg = config(tmp_path)
    tracker = build_tracker(cfg, {})
    tracker.start(dataclasses.asdict(cfg))
    play_rounds(tracker, [0, 1], make_state, checkpoint_after=(1,))
    (tmp_path / "out" / "train.log").write_text("Traceback ...\n")
    tracker.finish("FAILED")
    tracker.finish("FINISHED")  # a second finish changes nothing
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert "train.log" in artifacts(tracker.client, tracker.run_id)  # what went wrong
    # Summary metrics once, when the run finishes (a resumed run logs every step once).
    assert not any(key.startswith("summary/") for key in run.data.metrics)
    assert tracker.checkpoints.load(make_state())[0].round_num == 1


def test_logged_model_reloads_and_predicts_the_same_logits(tmp_path):
    from fedlm.models.architectures import build_model

    cfg = config(tmp_path)
    tracker = build_tracker(cfg, {})
    tracker.start(dataclasses.asdict(cfg))
    model = build_model(ModelConfig(name="tiny", embedding_dim=8, units=16), vocab_size=86)
    tracker.log_model(model)
    tracker.log_model(model)  # e.g. a resumed run that had logged it: no second model
    tracker.finish("FINISHED")

    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    uri = run.data.tags["fedlm.model_uri"]
    models = mlflow.search_logged_models([run.info.experiment_id], output_format="list")
    assert len(models) == 1
    loaded = mlflow.tensorflow.load_model(uri)
    ids = np.random.default_rng(0).integers(0, 86, size=(2, 13))
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-6, atol=1e-6)
    short = ids[:, :5]  # the signature leaves the sequence length free
    np.testing.assert_allclose(loaded(short).numpy(), model(short).numpy(), rtol=1e-6, atol=1e-6)
    signature = mlflow.models.get_model_info(uri).signature
    assert signature.inputs.inputs[0].shape == (-1, -1)
    assert signature.outputs.inputs[0].shape == (-1, -1, 86)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tracking_server_that_stops_answering_ends_the_run_in_one_line(
    tmp_path, make_state, caplog, capfd
):
    cfg = config(tmp_path, tracking=TrackingConfig(experiment_name="tests", give_up_after_s=2))
    tracker = build_tracker(cfg, CONTEXT)
    tracker.start(dataclasses.asdict(cfg))
    play_rounds(tracker, [0, 1], make_state, checkpoint_after=(1,))
    # The server goes away: nothing listens where the tracker's client now sends its calls.
    gone = f"http://127.0.0.1:{free_port()}"
    tracker.client, tracker.uri = mlflow.MlflowClient(tracking_uri=gone), gone

    started = time.monotonic()
    with pytest.raises(TrackingError) as error:
        tracker.log_metrics(round_metrics(2), step=2)
    assert time.monotonic() - started < 20
    message = str(error.value)
    assert message.startswith(f"MLflow run {tracker.run_id}: logging metrics failed at {gone} (")
    assert "retried for about 2 s (tracking.give_up_after_s)" in message
    assert message.endswith(f"continue with resume=true hydra.run.dir={tmp_path / 'out'}")
    assert "\n" not in message
    started = time.monotonic()
    tracker.finish("FAILED")  # one quick try, not another round of retries
    assert time.monotonic() - started < 15
    assert tracker.checkpoints.rounds() == [1]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")] == []
    assert capfd.readouterr().err == ""  # the error above is the one line


# Logs 50 metrics a step to the store at argv[1] (output dir argv[2]) until the store's disk is
# full; prints the error, then ends the run as the loop would.
FILL_THE_STORE = """
import dataclasses, sys
from fedlm.config import TrackingConfig, TrainConfig
from fedlm.errors import DiskFullError
from fedlm.tracking import build_tracker
cfg = TrainConfig(output_dir=sys.argv[2])
cfg.tracking = TrackingConfig(uri=f"sqlite:///{sys.argv[1]}", experiment_name="tests")
tracker = build_tracker(cfg, {})
tracker.start(dataclasses.asdict(cfg))
try:
    for step in range(100000):
        tracker.log_metrics({f"m{i}": float(i) for i in range(50)}, step=step)
except DiskFullError as error:
    print(tracker.run_id, error, sep="\\n")
    tracker.finish("FAILED")
"""


def test_a_store_on_a_full_disk_ends_the_run_in_one_line(tmp_path, empty_store):
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    logger = [sys.executable, "-c", FILL_THE_STORE, f"{disk}/mlflow.db", f"{tmp_path}/out"]
    script = f"""
    mount -t tmpfs -o size=1m tmpfs {disk} || exit 99
    cp {empty_store} {disk}/mlflow.db
    {shlex.join(logger)} > {tmp_path}/out.txt 2> {tmp_path}/err.txt
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], timeout=300)
    if done.returncode == 99:
        pytest.skip("no tmpfs: mounting is not allowed here")
    run_id, message = (tmp_path / "out.txt").read_text().splitlines()
    assert message == (
        f"MLflow run {run_id}: logging metrics failed: the tracking store at {disk}/mlflow.db: No "
        f"space left on device (the run's checkpoints in {tmp_path}/out/checkpoints are kept: once "
        f"there is space, continue with resume=true hydra.run.dir={tmp_path}/out)"
    )
    assert (tmp_path / "err.txt").read_text() == ""  # no traceback, no retry, no second line
