"""The report's files, fedlm-report writing them and the summary run they are logged to.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import csv

import mlflow
import pytest
from report_runs import STUDY

from fedlm.cli import report as cli
from fedlm.report import (
    group_runs,
    summarize,
    write_report,
)
from fedlm.tracking.runs import load_runs, log_report


def test_files_are_written_and_the_report_is_logged_to_a_summary_run(uri, sweep, tmp_path):
    runs, _ = load_runs(uri, "sweep")
    rows = summarize(group_runs(runs), STUDY, ["eval/accuracy", "eval/loss"])
    files = write_report(rows, STUDY, tmp_path / "report", runs=runs)
    assert [f.name for f in files] == [
        "report.md",
        "report.html",
        "report.csv",
        "runs.csv",
        "histories.csv",
        "accuracy_vs_round.png",
        "accuracy_vs_time.png",
        "loss_vs_round.png",
        "loss_vs_time.png",
    ]
    assert all(f.stat().st_size > 0 for f in files)
    records = list(csv.DictReader((tmp_path / "report" / "report.csv").open()))
    assert [r["setting"] for r in records] == ["server_optimizer=sgdm", "server_optimizer=adam"]
    assert float(records[0]["eval/accuracy final_mean"]) == pytest.approx(0.52)
    assert float(records[0]["eval/loss final_mean"]) == pytest.approx(2.92)
    assert (records[1]["missing_seeds"], records[1]["left_out"]) == ("1", "2")
    assert (records[0]["paper_comparable"], records[1]["paper_comparable"]) == ("True", "False")

    summary = log_report(uri, "sweep", tmp_path / "report", [sweep["sgd0"]])
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = sorted(a.path for a in client.list_artifacts(summary, "report"))
    assert logged == [f"report/{f.name}" for f in sorted(files)]
    assert client.get_run(summary).data.tags["fedlm.report"] == "true"
    folder = uri[len("sqlite:///") :].rsplit("/", 1)[0]  # never the working directory's mlruns/
    assert client.get_run(summary).info.artifact_uri.startswith(f"file://{folder}/mlartifacts/")
    assert len(load_runs(uri, "sweep")[0]) == 6  # a report is never read back as a training run


def test_fedlm_report_cli_writes_the_report_and_names_the_summary_run(uri, sweep, tmp_path, capfd):
    cli.main(["sweep", "--tracking-uri", uri, "--out", str(tmp_path / "out")])
    out = capfd.readouterr().out
    assert "| server_optimizer=sgdm | 2 | 52.0 ± 2.8 | 52.0 ± 2.8 |" in out
    assert "logged to MLflow run " in out
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.startswith("# sweep: report\n\n6 runs of MLflow experiment `sweep` in `sqlite:///")
    assert f"by `fedlm-report sweep --tracking-uri {uri} --out {tmp_path / 'out'}`." in text


def test_fedlm_report_cli_names_an_unknown_experiment(uri, capfd):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["nope", "--tracking-uri", uri, "--no-log"])
    assert exit_info.value.code == 2
    assert "experiment 'nope' is not in sqlite:///" in capfd.readouterr().err
