"""``fedlm-train`` refuses a bad config in one line, before it imports TensorFlow or TFF."""

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from shrunk import SHRUNK

from fedlm.data.build import build_shakespeare

WORKS = """A TINY PLAY

by William Shakespeare

  ANNE. One, two, three, four, five, six, seven.
  BEN. Two, three, four, five, six, seven, eight.
  ANNE. Three, four, five.
  BEN. Four, five, six.
  ANNE. Five.
  BEN. Six.
"""

# Runs fedlm-train's main() once per command line in one process; prints, per command line, its
# exit code, the last line it wrote to stderr and whether TensorFlow or TFF had been imported.
SCRIPT = """
import contextlib, io, json, sys
from fedlm.cli import train
results = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["fedlm-train", *argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            train.main()
            code = 0
        except SystemExit as exit:
            code = exit.code
    heavy = [m for m in ("tensorflow", "tensorflow_federated", "mlflow") if m in sys.modules]
    results.append([code, err.getvalue().strip().splitlines()[-1:], heavy])
print(json.dumps(results))
"""


def fedlm_train_errors(tmp_path, *command_lines):
    """(exit code, last stderr line, heavy modules imported) of each command line."""
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    argvs = [
        argv if any("hydra.run.dir" in a for a in argv) else [*argv, run_dir]
        for argv in command_lines
    ]
    env = {**os.environ, "FEDLM_RESULTS_DIR": str(tmp_path / "results")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])  # after what the runs printed
    return [(code, (lines or [""])[0], heavy) for code, lines, heavy in results]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A federated Shakespeare database of two clients, both with data at seq_len 2, batch 1."""
    folder = tmp_path_factory.mktemp("tiny_data")
    (folder / "works.txt").write_text(WORKS)
    build_shakespeare(folder / "works.txt", folder / "cache", log=lambda line: None)
    return folder / "cache"


def test_config_errors_are_one_line_and_come_before_tensorflow(tmp_path, tiny_data):
    data = [f"data.cache_dir={tiny_data}", "data.source=null"]
    tiny = [*data, "training.seq_len=2", "training.batch_size=1"]
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    results = fedlm_train_errors(
        tmp_path,
        ["training.rouds=3"],
        ["+training.rouds=3"],
        ["-m", "training.rouds=1,2"],
        ["+experimnt=finetune"],
        ["training.seq_len=0"],
        ["client_optimizer.learning_rate=-0.5"],
        ["data.pipeline=paper", "data.pad=true"],
        ["data.loss_on_padding=true"],
        [*tiny, "training.clients_per_round=3"],
        [*data, "training.seq_len=100000"],
        [f"data.cache_dir={a_file}"],
        [*tiny, "sampler=fixed", "sampler.client_ids=[A_TINY_PLAY_CAT]"],
        ["aggregator=dp_adaptive", "aggregator.noise_multipler=0.5"],
        ["aggregator=dp_adaptive", "+aggregator.noise_multipler=0.5"],
        ["aggregator=dp_adaptive", "aggregator.clip=1.0"],
        ["training.stop_at.metric=eval/loss"],
        ["model=nope"],  # Hydra's own errors: one line, status 2 too
        ["training.rounds=abc"],
        ["training.rounds=["],
        ["tracking=none", "tracking.uri=http://127.0.0.1:5000"],
        ["model.pretrained=/nonexistent/model.h5"],
    )
    training_keys = (
        "expected one of the keys of training: rounds, clients_per_round, local_epochs, "
        "max_batches_per_client, seq_len, batch_size, shuffle_buffer, stop_at"
    )
    rouds = f"training.rouds is not a config key (did you mean training.rounds?): {training_keys}"
    noise_multipler = (
        "aggregator.noise_multipler is not a config key "
        "(did you mean aggregator.noise_multiplier?): expected one of the keys of aggregator: "
        "name, noise_multiplier, clip, initial_clip, target_quantile, clip_learning_rate, "
        "clipped_count_stddev, delta, zeroing, clipping, measure_norms"
    )
    expected = [
        rouds,
        rouds,
        rouds,
        "experimnt is not a config key (did you mean experiment?): expected one of the "
        "top-level keys and config groups: data, model, client_optimizer, server_optimizer, "
        "algorithm, aggregator, sampler, runtime, tracking, training, eval, seed, resume, "
        "output_dir, experiment_scale, dp, experiment, mcmahan2017, reddi2021",
        "training.seq_len=0 is not allowed: expected a number >= 1",
        "client_optimizer.learning_rate=-0.5 is not allowed: expected a number > 0",
        "data.pad=True is not allowed: expected false with the 'paper' pipeline (it pads itself)",
        "data.loss_on_padding=True is not allowed: expected false unless data.pipeline=paper "
        "(only the papers' pipeline has padding targets; the tutorial's padded positions are "
        "never counted)",
        "training.clients_per_round=3 is not allowed: expected at most 2, the number of clients "
        "with data",
        "training.seq_len=100000 is not allowed: expected a length at which some client has one "
        "full batch: a batch of 8 sequences of 100000 + 1 characters needs 800,008 characters "
        "and the largest of the 2 clients has 58 (lower training.seq_len or "
        "training.batch_size, or set data.pad=true)",
        f"data.cache_dir='{a_file}' is a file: expected the folder that holds (or will hold) "
        "shakespeare.sqlite",
        "sampler.client_ids='A_TINY_PLAY_CAT' is not allowed: expected a client id of this dataset",
        noise_multipler,
        noise_multipler,
        # one schema for every aggregator: a key the chosen one does not take is refused too
        "aggregator.clip=1.0 is not allowed: expected null: aggregator.name='dp_adaptive' takes "
        "only noise_multiplier, initial_clip, target_quantile, clip_learning_rate, "
        "clipped_count_stddev, delta, zeroing (aggregator=<name> picks one)",
        "training.stop_at.value=None is not allowed: expected a number: "
        "training.stop_at.metric=eval/loss stops the run once it is <= the value",
        "In 'train': Could not find 'model/nope': expected one of dickens_gru, lstm_2x256, tiny",
        "Error merging override training.rounds=abc: Value 'abc' of type 'str' could not be "
        "converted to Integer",
        "the override 'training.rounds=[' cannot be parsed: no viable alternative at input '['",
        "tracking.uri='http://127.0.0.1:5000' is not allowed: expected null with "
        "tracking.enabled=false (tracking=none logs nothing anywhere; tracking=mlflow logs to "
        "the URI)",
        "model.pretrained='/nonexistent/model.h5': no such file or directory "
        "(/nonexistent/model.h5); expected none, dickens, an http(s) URL or the path of a saved "
        "Keras model",
    ]
    assert [(code, line) for code, line, _ in results] == [
        (2, f"fedlm-train: error: {message}") for message in expected
    ]
    assert [heavy for _, _, heavy in results] == [[]] * len(expected)


def test_a_text_that_is_not_at_hand_is_fetched_or_refused_in_one_line_before_tensorflow(
    tmp_path, monkeypatch, text_server, closed_port_url
):
    monkeypatch.setenv("FEDLM_DATA_DIR", str(tmp_path / "data"))  # no ../shared/data here
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))
    text_server.files["/100.txt"] = WORKS.encode()  # not the 1994 edition: refused after arriving
    zip_url = f"{closed_port_url}/1994-01-100.zip"
    source = tmp_path / "data/shakespeare/complete_works_gutenberg100_1994.txt"
    target = tmp_path / "cache/texts/shakespeare/complete_works_gutenberg100_1994.txt"
    what = "the 1994 Project Gutenberg Complete Works of Shakespeare"

    results = fedlm_train_errors(
        tmp_path,
        [f"data.source_url={zip_url}"],
        [f"data.source_url={text_server.url}/100.txt"],
        ["data.source_url=null"],
        ["data.source_url=ftp://example.org/100.zip"],
    )

    assert [(code, line) for code, line, _ in results] == [
        (
            2,
            f"fedlm-train: error: cannot fetch {what} from data.source_url='{zip_url}' "
            "(ConnectionRefusedError: [Errno 111] Connection refused): download it yourself and "
            f"put the text (unzipped) at {target}, or set data.source_url to a mirror",
        ),
        (
            2,
            f"fedlm-train: error: data.source_url='{text_server.url}/100.txt' did not give "
            f"{what}: its parse gives 1 plays and 2 clients, expected 36 and 1,117 (missing 36: "
            "ALLS WELL THAT ENDS WELL, THE TRAGEDY OF ANTONY AND CLEOPATRA, AS YOU LIKE IT, ...) "
            f"({len(WORKS)} bytes arrived); download it yourself and put the text at {target}, "
            "or set data.source_url to a mirror",
        ),
        (
            2,
            f"fedlm-train: error: data.source='{source}' does not exist and data.source_url is "
            f"null: expected {what} at data.source or at {target}, or data.source_url set to its "
            "address (conf/data/shakespeare.yaml names Gutenberg's) to fetch it from",
        ),
        (
            2,
            "fedlm-train: error: data.source_url='ftp://example.org/100.zip' is not allowed: "
            "expected an http:// or https:// address, or null",
        ),
    ]
    assert [heavy for _, _, heavy in results] == [[]] * 4
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@contextlib.contextmanager
def unwritable(folder):
    """``folder`` made unwritable for this user: read-only, or immutable for root."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_an_output_folder_that_cannot_be_written_is_one_line_before_anything_runs(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        results = fedlm_train_errors(
            tmp_path,
            [f"hydra.run.dir={locked}/run"],
            ["-m", "seed=0,1", f"hydra.sweep.dir={locked}/sweep"],
        )
    assert [line for _, line, _ in results] == [
        f"fedlm-train: error: hydra.run.dir='{locked}/run' cannot be used ({locked}, where it "
        "would be created, cannot be written by this user): expected a folder this user can "
        "create and write to",
        f"fedlm-train: error: hydra.sweep.dir='{locked}/sweep' cannot be used ({locked}, where "
        "it would be created, cannot be written by this user): expected a folder this user can "
        "create and write to",
    ]
    assert [code for code, _, _ in results] == [2, 2]
    assert list(locked.iterdir()) == []


TINY_RUN = [
    *SHRUNK,
    "training.rounds=1",
    "training.max_batches_per_client=1",
    "eval.max_batches=1",
    "eval.generate_length=0",
    "tracking.log_model=false",
    "tracking.experiment_name=cli",
]


def test_a_run_prints_its_output_folder_keeps_its_log_and_writes_nothing_elsewhere(
    monkeypatch, tmp_path, capfd
):
    import fedlm.cli.train as train_cli

    work = tmp_path / "work"  # the folder fedlm-train is started from
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    run_dir = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["fedlm-train", *TINY_RUN, f"hydra.run.dir={run_dir}"])
    train_cli.main()

    out = capfd.readouterr().out.splitlines()
    assert out[0] == f"output folder: {run_dir} (checkpoints, train.log)"
    assert f"output folder: {run_dir}" in out[-3:]
    assert any(line.startswith("round 1/1 | train: loss=") for line in out)
    ui = [line for line in out if line.startswith("MLflow run ")]
    assert len(ui) == 1 and " uv run --project " in ui[0]  # a command that works from anywhere
    log = (run_dir / "train.log").read_text().splitlines()
    assert [line for line in out if line in log] == out  # every line printed is in train.log
    assert list(work.iterdir()) == []  # no ./mlruns, nothing else


@pytest.mark.slow  # a real run in its own process, stopped after round 2: about a minute
def test_a_stopped_run_prints_the_command_that_resumes_it(tmp_path):
    """SIGTERM (as a scheduler or `kill` sends it) mid-run: the run ends KILLED, and the last
    lines say how to continue it, with its own overrides and resume=<its run id>."""
    import signal
    import time

    overrides = [o for o in TINY_RUN if not o.startswith("training.rounds=")]
    overrides += ["training.rounds=500", "eval.prompt=To be"]
    run_dir = tmp_path / "run"
    env = {**os.environ, "FEDLM_RESULTS_DIR": str(tmp_path / "results")}
    # Files, not pipes: nothing here may wait for the end of TFF's worker's output.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedlm.cli.train", *overrides, f"hydra.run.dir={run_dir}"],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 240
            log = run_dir / "train.log"
            while "round 2/500 " not in (log.read_text() if log.exists() else ""):
                assert process.poll() is None and time.monotonic() < deadline, err.name
                time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 128 + signal.SIGTERM
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    run_id = json.loads((run_dir / "checkpoints" / "run.json").read_text())["run_id"]
    lines = (tmp_path / "err").read_text().splitlines()
    assert lines[-2:] == [
        "stopped: continue with",
        "  uv run fedlm-train "
        + " ".join(overrides[:-1])
        + f" 'eval.prompt=To be' resume={run_id}",
    ]


# Takes the MLflow run argv[2] (output dir argv[1]) for this process, says so, and holds it until
# stdin closes.
HOLDER = """
import sys
from fedlm.config import TrainConfig
from fedlm.tracking import build_tracker
assert build_tracker(TrainConfig(output_dir=sys.argv[1], resume=sys.argv[2]), {}).claim()
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow  # three fedlm-train processes, one holding a run: ~100 s loaded
def test_resuming_a_finished_run_or_one_being_written_stops_before_tensorflow(
    monkeypatch, tmp_path, tiny_data
):
    from fedlm.config import TrainConfig
    from fedlm.tracking import build_tracker

    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))  # as fedlm_train_errors
    runs = {}
    for name, status in [("finished", "FINISHED"), ("busy", "KILLED")]:
        cfg = TrainConfig(output_dir=str(tmp_path / name))
        tracker = build_tracker(cfg, {})
        tracker.start(dataclasses.asdict(cfg))
        tracker.log_metrics({"train/loss": 1.0}, step=1)
        tracker.finish(status)
        runs[name] = tracker.client.get_run(tracker.run_id)
    finished, busy = (runs[name].info.run_id for name in ("finished", "busy"))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "busy"), busy],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        tiny = [f"data.cache_dir={tiny_data}", "data.source=null"]
        tiny += ["training.seq_len=2", "training.batch_size=1", "training.clients_per_round=2"]
        results = fedlm_train_errors(
            tmp_path, [*tiny, f"resume={finished}"], [*tiny, f"resume={busy}"]
        )
    finally:
        holder.kill()
        holder.wait()
    lock = tmp_path / "busy" / "checkpoints" / "run.lock"
    assert results == [
        (
            0,
            f"fedlm: warning: MLflow run {finished} finished all its rounds: nothing to resume",
            ["mlflow"],
        ),
        (
            2,
            f"fedlm-train: error: MLflow run {busy} is being written by process {holder.pid} "
            f"(lock {lock}): a run has one writer. Wait for that process to end, or stop it "
            f"(kill {holder.pid}), then resume={busy} again",
            ["mlflow"],
        ),
    ]
    for run in runs.values():  # neither run changed: no status, no metric, no tag
        after = tracker.client.get_run(run.info.run_id)
        assert (after.info.status, after.info.end_time) == (run.info.status, run.info.end_time)
        assert (after.data.metrics, after.data.tags) == (run.data.metrics, run.data.tags)


def test_a_full_disk_under_the_output_folder_is_one_line_and_exit_status_2(tmp_path, tiny_data):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.log").symlink_to("/dev/full")  # every write fails with ENOSPC
    tiny = [f"data.cache_dir={tiny_data}", "data.source=null", "training.seq_len=2"]
    tiny += ["training.batch_size=1", "training.clients_per_round=2"]
    done = subprocess.run(
        [sys.executable, "-m", "fedlm.cli.train", *tiny, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FEDLM_RESULTS_DIR": str(tmp_path / "results")},
    )
    assert (done.returncode, done.stderr) == (
        2,
        f"fedlm-train: error: writing the job's log {run_dir}/train.log: No space left on device\n",
    )


def tmpfs_allowed(folder) -> bool:
    """Whether this user may mount a tmpfs in a mount namespace of its own (``unshare -rm``)."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.slow  # two real runs of the tiny model: about 2 minutes on 2 busy cores
def test_a_real_full_disk_ends_the_run_in_one_line_and_the_run_resumes_once_there_is_space(
    tmp_path,
):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not tmpfs_allowed(disk):
        pytest.skip("no tmpfs: unshare -rm is not allowed here")
    run = [sys.executable, "-m", "fedlm.cli.train", *TINY_RUN, "training.rounds=5"]
    run += ["tracking.keep_checkpoints=2", f"hydra.run.dir={disk}/run"]
    # 200 KiB hold two checkpoints of the tiny model (76 KiB each) but not a third beside them.
    script = f"""
    mount -t tmpfs -o size=200k tmpfs {disk}
    {shlex.join(run)} > {tmp_path}/full.out 2> {tmp_path}/full.err; echo $? > {tmp_path}/full.rc
    ls -A {disk}/run/checkpoints > {tmp_path}/full.ls
    mount -o remount,size=4m {disk}
    {shlex.join([*run, "resume=true"])} > {tmp_path}/resumed.out 2> {tmp_path}/resumed.err
    echo $? > {tmp_path}/resumed.rc
    """
    env = {**os.environ, "FEDLM_RESULTS_DIR": str(tmp_path / "results")}
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=900, check=True)

    def read(name):
        return (tmp_path / name).read_text()

    checkpoints = f"{disk}/run/checkpoints"
    assert (read("full.rc"), read("full.err")) == (
        "2\n",
        f"fedlm-train: error: writing the checkpoint {checkpoints}/round_3: No space left on "
        "device (kept: round_1, round_2)\n",
    )
    assert read("full.ls").split() == ["round_1", "round_2", "run.json", "run.lock"]
    assert read("resumed.rc") == "0\n", read("resumed.err")
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/results/mlflow.db")
    (found,) = client.search_runs(client.get_experiment_by_name("cli").experiment_id)
    assert found.info.status == "FINISHED"
    history = client.get_metric_history(found.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]  # each round once


def test_an_output_folder_on_a_full_disk_is_one_line_before_or_while_hydra_writes_it(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not tmpfs_allowed(disk):
        pytest.skip("no tmpfs: unshare -rm is not allowed here")
    run = shlex.join([sys.executable, "-m", "fedlm.cli.train", f"hydra.run.dir={disk}/run"])
    # Full, then one page (4 KiB) free: room for Hydra's config.yaml, not for its hydra.yaml.
    script = f"""
    mount -t tmpfs -o size=64k tmpfs {disk}
    dd if=/dev/zero of={disk}/fill bs=4k 2> /dev/null
    {run} 2> {tmp_path}/full.err; echo $? >> {tmp_path}/rc
    rm {disk}/fill; dd if=/dev/zero of={disk}/fill bs=4k count=15 2> /dev/null
    {run} 2> {tmp_path}/almost.err; echo $? >> {tmp_path}/rc
    """
    env = {**os.environ, "FEDLM_RESULTS_DIR": str(tmp_path / "results")}
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=300, check=True)
    assert (tmp_path / "rc").read_text() == "2\n2\n"
    assert (tmp_path / "full.err").read_text() == (
        f"fedlm-train: error: hydra.run.dir='{disk}/run' cannot be used ({disk}, where it would "
        "be created, is on a full file system: No space left on device): expected a folder this "
        "user can create and write to\n"
    )
    assert (tmp_path / "almost.err").read_text() == (
        f"fedlm-train: error: writing the output folder {disk}/run: No space left on device\n"
    )


@pytest.mark.slow  # a real run through the CLI: 70 s beside other jobs on 2 cores
def test_a_single_run_as_the_mlflow_ui_shows_it(monkeypatch, tmp_path, capfd):
    """What the runs table and the run page show, read through MLflow's client from the real
    SQLite store: a short name, the source, the command in the description, train.log among the
    artifacts, the summary metrics, and no param of a choice not made."""
    import mlflow

    import fedlm.cli.train as train_cli

    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    overrides = [*TINY_RUN, "server_optimizer=adam", "server_optimizer.learning_rate=0.01"]
    monkeypatch.setattr(sys, "argv", ["fedlm-train", *overrides, f"hydra.run.dir={tmp_path}/r"])
    train_cli.main()
    capfd.readouterr()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/results/mlflow.db")
    experiment = client.get_experiment_by_name("cli")
    (run,) = client.search_runs([experiment.experiment_id])
    tags, params = run.data.tags, run.data.params
    assert run.info.run_name == "synthetic tiny adam lr=0.01 …"  # the rest: 40 characters at most
    assert (tags["mlflow.source.name"], tags["mlflow.source.type"]) == ("fedlm-train", "LOCAL")
    assert tags["mlflow.note.content"].startswith(
        "Reproduce with:\n\n    uv run fedlm-train " + " ".join(overrides) + "\n\n"
    )
    assert "fedlm.hydra.sweep_dir" not in tags
    assert "train.log" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert {k for k in run.data.metrics if k.startswith("summary/")} == {
        "summary/final_eval_accuracy",
        "summary/best_eval_accuracy",
        "summary/best_round",
        "summary/rounds",
        "summary/running_minutes",
    }
    assert params["server_optimizer.beta_1"] == "0.9"  # adam's own
    not_chosen = ["client_optimizer.beta_1", "server_optimizer.momentum", "aggregator.clip"]
    not_chosen += ["data.source", "data.loss_on_padding", "sampler.client_ids", "runtime.workers"]
    assert not set(not_chosen) & set(params)
