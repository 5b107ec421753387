"""``fedlm-train`` refuses a bad config in one line, before it imports TensorFlow or TFF."""

import contextlib
import json
import os
import subprocess
import sys

import pytest

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
        "clipped_count_stddev, delta, zeroing, clipping"
    )
    expected = [
        rouds,
        rouds,
        rouds,
        "experimnt is not a config key (did you mean experiment?): expected one of the "
        "top-level keys and config groups: data, model, client_optimizer, server_optimizer, "
        "algorithm, aggregator, sampler, runtime, tracking, training, eval, seed, resume, "
        "output_dir, experiment_scale, experiment, mcmahan2017, reddi2021",
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
    "data=synthetic",
    "model=tiny",
    "training.rounds=1",
    "training.clients_per_round=2",
    "training.seq_len=10",
    "training.batch_size=2",
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
