"""Where ``fedlm-report`` writes by default, and how its header names the store."""

from fedlm import paths
from fedlm.cli.report import default_out_dir, relative_store


def test_the_default_output_is_under_the_results_folder_even_for_a_committed_study(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    assert (paths.PROJECT_ROOT / "experiments" / "reddi2021" / "report").is_dir()
    assert default_out_dir("reddi2021") == tmp_path / "results" / "reports" / "reddi2021"
    assert default_out_dir("fedlm") == tmp_path / "results" / "reports" / "fedlm"


def test_the_store_is_named_relative_to_the_working_directory_or_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert relative_store(f"sqlite:///{tmp_path}/results/mlflow.db") == (
        "sqlite:///results/mlflow.db"
    )
    in_project = f"sqlite:///{paths.PROJECT_ROOT}/results/mlflow.db"
    assert relative_store(in_project) == "sqlite:///results/mlflow.db"
    assert relative_store("sqlite:////elsewhere/mlflow.db") == "sqlite:////elsewhere/mlflow.db"
    assert relative_store("http://mlflow.example.org:5000") == "http://mlflow.example.org:5000"
