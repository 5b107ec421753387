import socket
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


def test_ui_command_only_for_a_local_store():
    assert store.ui_command("sqlite:///r/mlflow.db") == (
        "uv run mlflow ui --backend-store-uri sqlite:///r/mlflow.db"
    )
    assert store.ui_command("http://host:5000") is None
