"""The runs behind a report (runs.csv, histories.csv): the same report without the store,
and committed runs beside the store's.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import csv
import dataclasses

import mlflow
import pytest
from mlflow.entities import Metric, Param
from report_runs import FULL, SGD_0, T0, running_at_312

from fedlm import paths
from fedlm.cli import report as cli
from fedlm.report import (
    Study,
    group_runs,
    markdown,
    read_runs,
    summarize,
    write_report,
)
from fedlm.report.histories import write_runs
from fedlm.tracking import store
from fedlm.tracking.runs import PROVENANCE_TAGS, load_runs


def test_the_runs_behind_a_report_make_the_same_report_without_the_store(uri, sweep, tmp_path):
    cli.main(["sweep", "--tracking-uri", uri, "--out", str(tmp_path / "a"), "--no-log"])
    histories = list(csv.DictReader((tmp_path / "a" / "histories.csv").open()))
    sgd0 = [
        (int(h["round"]), float(h["value"]))
        for h in histories
        if h["run_id"] == sweep["sgd0"] and h["metric"] == "eval/accuracy"
    ]
    assert sgd0 == list(enumerate(SGD_0))
    runs = {r["run_id"]: r for r in csv.DictReader((tmp_path / "a" / "runs.csv").open())}
    assert len(runs) == 6
    assert (runs[sweep["sgd0"]]["counted"], runs[sweep["failed"]]["counted"]) == ("yes", "failed")
    assert runs[sweep["old"]]["counted"] == f"superseded by run {sweep['sgd0']}"
    assert runs[sweep["sgd1"]]["param.seed"] == "1"
    assert runs[sweep["sgd1"]]["tag.override.server_optimizer"] == "sgdm"

    # From the CSV files alone (no store): the same tables and numbers.
    back = read_runs(tmp_path / "a")
    stored, _ = load_runs(uri, "sweep")
    assert [(r.run_id, r.status, r.params, r.overrides) for r in back] == [
        (r.run_id, r.status, r.params, r.overrides) for r in stored
    ]
    cli.main(["sweep", "--runs-from", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    a = (tmp_path / "a" / "report.md").read_text().splitlines()
    b = (tmp_path / "b" / "report.md").read_text().splitlines()
    assert a[2].startswith("6 runs of MLflow experiment `sweep`")
    assert b[2].startswith(f"6 runs of `{tmp_path / 'a' / 'runs.csv'}`")
    assert a[3:] == b[3:]
    assert (tmp_path / "a" / "report.csv").read_text() == (
        tmp_path / "b" / "report.csv"
    ).read_text()


def test_runs_from_a_folder_without_the_csv_files_is_an_error(tmp_path, capfd):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--runs-from", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"--runs-from {tmp_path}: no runs.csv there" in capfd.readouterr().err


def test_runs_csv_written_before_the_time_columns_still_reads(tmp_path):
    from fedlm.report.run_statistics import points

    # The files of an older report: no resume tags, no eval/seconds.
    (tmp_path / "runs.csv").write_text(
        "run_id,name,status,start_time,end_time,setting,counted,param.seed,param.training.rounds\n"
        f"r,r,FINISHED,{T0},{T0 + 150},all runs,yes,0,2\n"
    )
    (tmp_path / "histories.csv").write_text(
        "run_id,metric,round,value,time\n"
        f"r,eval/accuracy,0,0.1,{T0}\nr,eval/accuracy,2,0.3,{T0 + 120}\n"
        f"r,round/seconds,1,30.0,{T0 + 60}\nr,round/seconds,2,40.0,{T0 + 120}\n"
    )
    (run,) = read_runs(tmp_path)
    assert run.resumes == 0
    assert points(run, "eval/accuracy") == [(0, 0.1, 0.0), (2, 0.3, 70.0)]  # training time
    text = markdown(summarize(group_runs([run]), Study(name="t")), Study(name="t"))
    assert "| all runs | 1 | 30.0 | 30.0 | 2.5 | 1.2 | 1.2 |" in text
    assert "![eval/accuracy against training time](accuracy_vs_time.png)" in text


def test_fedlm_report_include_unfinished_from_the_runs_csv(tmp_path, capfd):
    running = running_at_312()
    rows = summarize(group_runs([running]), FULL)
    write_report(rows, FULL, tmp_path / "a", runs=[running])
    cli.main(["t", "--runs-from", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert "| all runs | 0 |" in (tmp_path / "b" / "report.md").read_text()
    cli.main(
        ["t", "--runs-from", str(tmp_path / "a"), "--out", str(tmp_path / "c")]
        + ["--include-unfinished"]
    )
    text = (tmp_path / "c" / "report.md").read_text()
    assert text.startswith("# t: interim report, 1 of 1 runs not finished\n")
    assert "| all runs | 1 (unfinished: last round 312 of 1200) |" in text
    assert "| all runs | 1 (unfinished: last round 312 of 1200) |" in capfd.readouterr().out


def test_committed_runs_and_the_stores_runs_make_one_report(uri, sweep, tmp_path):
    """A report folder's CSVs (runs made on a machine that is gone) merged with the store's runs:
    each run once, the longer history where both hold it."""
    from fedlm.report.histories import merge_runs

    cli.main(["sweep", "--tracking-uri", uri, "--out", str(tmp_path / "a"), "--no-log"])
    # The committed folder holds sgd0 cut to its first two rounds, and one run the store lacks.
    committed = read_runs(tmp_path / "a")
    for run in committed:
        if run.run_id == sweep["sgd0"]:
            run.history = {k: v[:2] for k, v in run.history.items()}
    gone = dataclasses.replace(committed[0], run_id="f" * 32, name="made elsewhere")
    write_runs([*committed, gone], tmp_path / "c", {})
    stored, _ = load_runs(uri, "sweep")
    merged = merge_runs(read_runs(tmp_path / "c"), stored)
    assert len(merged) == len(stored) + 1
    by_id = {run.run_id: run for run in merged}
    assert [p[1] for p in by_id[sweep["sgd0"]].history["eval/accuracy"]] == list(
        SGD_0
    )  # the store's
    assert by_id["f" * 32].name == "made elsewhere"

    cli.main(
        [
            "sweep",
            "--runs-from",
            str(tmp_path / "c"),
            "--and-store",
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "d"),
            "--no-log",
        ]
    )
    runs = list(csv.DictReader((tmp_path / "d" / "runs.csv").open()))
    assert sorted(r["run_id"] for r in runs) == sorted(by_id)
    text = (tmp_path / "d" / "report.md").read_text().splitlines()[2]
    assert text.startswith(f"7 runs of `{tmp_path / 'c' / 'runs.csv'}` and MLflow experiment")


def test_and_store_needs_runs_from(capfd):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--and-store"])
    assert exit_info.value.code == 2
    assert "--and-store" in capfd.readouterr().err


# -- what runs.csv records of each run's code, model and data ---------------------------------

# The full-scale FedAvg run of experiments/reddi2021/report_full (its README).
FEDAVG_FULL_RUN = "734b92c694034687b031b4f1de1ab804"
PROVENANCE = {
    "mlflow.source.git.commit": "13ec097" + "0" * 33,
    "fedlm.git.dirty": "false",
    "fedlm.model.parameters": "822570",
    "fedlm.model.vocab_size": "90",
    "fedlm.data.parser_version": "2",
    "fedlm.data.source_sha256": "ab" * 32,
}


def test_runs_csv_records_each_runs_code_model_and_data_and_leaves_older_runs_empty(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    eid = client.create_experiment("t", store.artifact_location(uri, "t"))
    ids = []
    for index, tags in enumerate([PROVENANCE, {}]):  # a run of today, a run made before
        run = client.create_run(eid, start_time=int((T0 + index) * 1000), tags=tags)
        metrics = [Metric("eval/accuracy", 0.5, int(T0 * 1000), s) for s in (0, 1)]
        params = [Param("seed", str(index)), Param("training.rounds", "1")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED")
        ids.append(run.info.run_id)
    runs, _ = load_runs(uri, "t")
    write_report(summarize(group_runs(runs), Study(name="t")), Study(name="t"), tmp_path / "a")
    lines = list(csv.DictReader((tmp_path / "a" / "runs.csv").open()))
    assert [line["run_id"] for line in lines] == ids
    assert {key: lines[0][f"tag.{key}"] for key in PROVENANCE_TAGS} == PROVENANCE
    assert {lines[1][f"tag.{key}"] for key in PROVENANCE_TAGS} == {""}
    # and back from the CSV files alone
    today, older = read_runs(tmp_path / "a")
    assert {key: today.tags[key] for key in PROVENANCE_TAGS} == PROVENANCE
    assert not set(PROVENANCE_TAGS) & set(older.tags)


def test_the_committed_runs_provenance_columns(tmp_path):
    # The committed FedAvg run predates provenance tags, so its columns are empty; every run
    # committed since (the other methods' full-scale runs) records all of them, and they agree on
    # the model and the data build.
    folder = paths.PROJECT_ROOT / "experiments" / "reddi2021" / "report_full"
    runs = read_runs(folder)
    write_report(summarize(group_runs(runs), Study(name="t")), Study(name="t"), tmp_path)
    lines = {line["run_id"]: line for line in csv.DictReader((tmp_path / "runs.csv").open())}
    fedavg = lines.pop(FEDAVG_FULL_RUN)
    assert {fedavg[f"tag.{key}"] for key in PROVENANCE_TAGS} == {""}
    assert fedavg["param.model.name"] == "lstm_2x256"
    for line in lines.values():
        assert all(line[f"tag.{key}"] for key in PROVENANCE_TAGS), line["run_id"]
        assert line["tag.fedlm.model.parameters"] == "820522"
        assert line["tag.fedlm.model.vocab_size"] == "90"
        assert line["param.model.name"] == "lstm_2x256"
