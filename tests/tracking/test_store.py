import contextlib
import os
import socket
import subprocess
import sys
import time

import pytest

from fedlm.errors import FedlmError
from fedlm.tracking import store


def test_default_store_is_sqlite_under_the_results_dir(results_dir):
    assert store.resolve_uri(None) == f"sqlite:///{results_dir.resolve()}/mlflow.db"
    assert store.resolve_uri("http://mlflow:5000") == "http://mlflow:5000"


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("http://alice:s3cret@mlflow.example.org:5000", "http://alice:***@mlflow.example.org:5000"),
        ("postgresql://bob:pw@db/mlflow", "postgresql://bob:***@db/mlflow"),
        ("https://tok@host/", "https://***@host/"),
        ("https://host/?x=1&api_token=abc", "https://host/?x=1&api_token=***"),
        ("sqlite:////tmp/r/mlflow.db", "sqlite:////tmp/r/mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_mask_uri(uri, masked):
    assert store.mask_uri(uri) == masked


def test_prepare_store_creates_the_store_and_experiment_with_artifacts_beside_it(
    tmp_path, monkeypatch
):
    results_dir = tmp_path / "new_results"
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(results_dir))
    client, experiment_id = store.prepare_store(None, "my study")
    assert (results_dir / "mlflow.db").is_file()
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == "my study"
    assert experiment.artifact_location == (results_dir / "mlartifacts" / "my_study").as_uri()
    # Idempotent: the same experiment the second time.
    assert store.prepare_store(None, "my study")[1] == experiment_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_reported_at_once_with_the_uri_masked():
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(FedlmError) as caught:
        store.prepare_store(uri, "fedlm")
    assert time.monotonic() - started < 10  # no minutes of MLflow's default retries
    message = str(caught.value)
    assert "tracking.uri='http://alice:***@127.0.0.1:" in message
    assert "s3cret" not in message


def test_unwritable_sqlite_store_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FedlmError, match="cannot be reached"):
        store.prepare_store(f"sqlite:///{blocker}/mlflow.db", "fedlm")


@contextlib.contextmanager
def unwritable(path):
    """``path`` made unwritable for this user: read-only, or immutable for root."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


@pytest.mark.parametrize("read_only", ["database", "folder"])
def test_a_store_this_user_cannot_write_is_refused_in_seconds(tmp_path, empty_store, read_only):
    """MLflow retries a SQLite store it cannot write with back-off for minutes (133 s measured)."""
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "mlflow.db"
    db.write_bytes(empty_store.read_bytes())
    started = time.monotonic()
    with (
        unwritable(db if read_only == "database" else folder),
        pytest.raises(store.TrackingError, match="cannot be written by this user"),
    ):
        store.prepare_store(f"sqlite:///{db}", "fedlm")
    assert time.monotonic() - started < 5


# Three processes that open a brand-new store at the same moment, as a first sweep's jobs (or
# SLURM jobs sharing a store) do: each creates the experiment, a run, and logs to it.
CONCURRENT = """
import pathlib, sys, tempfile, time
from fedlm.tracking import store
from mlflow.entities import Metric
ready = pathlib.Path(sys.argv[2])
tempfile.NamedTemporaryFile(dir=ready, delete=False)  # MLflow is imported: ready
while len(list(ready.iterdir())) < 3:  # start together
    time.sleep(0.01)
client, experiment_id = store.prepare_store(sys.argv[1], "together")
run = client.create_run(experiment_id)
client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 0, 1)])
client.set_terminated(run.info.run_id)
print("ok")
"""


@pytest.mark.slow  # three processes on a new store: ~65 s loaded
def test_three_processes_on_a_brand_new_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    ready = tmp_path / "ready"
    ready.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, uri, str(ready)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["ok"] * 3
    client, experiment_id = store.prepare_store(uri, "together")
    runs = client.search_runs([experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * 3


def test_opening_a_store_creates_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """MLflow's default artifact root is ./mlruns, made in the working directory of every process
    that opens a SQLite store: fedlm's stores keep it beside the database."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    client = store.connect(f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}")
    assert list(work.iterdir()) == []
    default = client.get_experiment("0")
    assert default.artifact_location == (tmp_path / "r" / "mlartifacts" / "0").as_uri()


def test_ui_command_works_from_any_folder_and_only_for_a_local_store():
    from fedlm import paths

    assert store.ui_command("sqlite:////r/mlflow.db") == (
        f"uv run --project {paths.PROJECT_ROOT} mlflow ui --backend-store-uri sqlite:////r/mlflow.db"
    )
    assert store.ui_command("http://host:5000") is None
