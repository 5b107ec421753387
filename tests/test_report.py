"""The report on runs made directly in a temporary MLflow store: grouping, mean ± std over seeds,
the study's statistics, the paper's numbers, and runs that failed, still run or are missing."""

import csv
import dataclasses
import math

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from mlflow.entities import Metric, Param
from omegaconf import OmegaConf, open_dict

import fedlm.cli.train  # noqa: F401  (registers the train schema for compose)
from fedlm.cli import report as cli
from fedlm.cli.common import CONFIG_DIR
from fedlm.errors import ConfigError
from fedlm.report import (
    Scale,
    Study,
    find_study,
    group_runs,
    load_study,
    markdown,
    read_runs,
    summarize,
    write_report,
)
from fedlm.report.document import main_table
from fedlm.report.histories import write_runs
from fedlm.report.study import PaperNumber, study_file
from fedlm.tracking import run_info, store
from fedlm.tracking.runs import RunRecord, load_runs, log_report

T0 = 1_700_000_000.0  # seconds; every run starts at T0 + its index * 1000


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One SQLite store for the module (MLflow's migrations take seconds); one experiment a test."""
    folder = tmp_path_factory.mktemp("report_store")
    return f"sqlite:///{folder}/mlflow.db"


def make_run(
    client,
    experiment_id,
    index,
    *,
    overrides=None,
    params=None,
    accuracy=(),
    status="FINISHED",
    loss=None,
    epsilon=(),
):
    """A run as fedlm-train logs one: params, override tags of a multirun job, eval/accuracy (and
    eval/loss: ``loss``, else 5 - 4 x accuracy) per round (round r logged 60 s after the start
    times r), round/seconds, privacy/epsilon and privacy/delta from round 1 when ``epsilon`` is
    given, and its end."""
    start = T0 + 1000 * index
    tags = {f"override.{k}": v for k, v in (overrides or {}).items()}
    run = client.create_run(experiment_id, start_time=int(start * 1000), tags=tags)
    run_id = run.info.run_id
    params = {"training.rounds": str(len(accuracy) - 1), **(params or {})}
    metrics = [
        Metric("eval/accuracy", value, int((start + 60 * step) * 1000), step)
        for step, value in enumerate(accuracy)
    ]
    losses = loss if loss is not None else [5.0 - 4.0 * a for a in accuracy]
    metrics += [
        Metric("eval/loss", value, int((start + 60 * step) * 1000), step)
        for step, value in enumerate(losses)
    ]
    metrics += [
        Metric("round/seconds", 30.0, int((start + 60 * step) * 1000), step)
        for step in range(1, len(accuracy))
    ]
    for step, value in enumerate(epsilon, start=1):
        metrics.append(Metric("privacy/epsilon", value, int((start + 60 * step) * 1000), step))
        metrics.append(Metric("privacy/delta", 0.001, int((start + 60 * step) * 1000), step))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    if status != "RUNNING":
        end = start + 60 * max(len(accuracy) - 1, 0) + 30
        client.set_terminated(run_id, status, end_time=int(end * 1000))
    return run_id


def experiment(uri, name):
    """A new experiment whose artifacts stay beside the temporary store, as fedlm makes them."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    return client, client.create_experiment(name, store.artifact_location(uri, name))


# Two server optimizers x seeds 0 and 1, accuracy after rounds 0..4 (sgd+momentum, adam), plus a
# FAILED and a RUNNING run, a finished run superseded by a newer one of the same seed, a sweep
# parent (never a training run), and no seed-1 run of adam.
SGD_0 = (0.01, 0.20, 0.30, 0.40, 0.50)
SGD_1 = (0.01, 0.22, 0.34, 0.46, 0.54)
ADAM_0 = (0.01, 0.10, 0.15, 0.20, 0.25)


@pytest.fixture(scope="module")
def sweep(uri):
    client, eid = experiment(uri, "sweep")

    def job(index, optimizer, seed, accuracy, status="FINISHED", momentum="0.9"):
        name = {"sgdm": "sgd", "adam": "adam"}[optimizer]
        return make_run(
            client,
            eid,
            index,
            overrides={"server_optimizer": optimizer, "seed": seed, "data": "synthetic"},
            params={
                "seed": seed,
                "server_optimizer.name": name,
                "server_optimizer.momentum": momentum if name == "sgd" else "null",
                "server_optimizer.learning_rate": "1.0" if name == "sgd" else "0.1",
                "experiment_scale": "quick",
            },
            accuracy=accuracy,
            status=status,
        )

    ids = {
        "old": job(0, "sgdm", "0", (0.01, 0.9, 0.9, 0.9, 0.9)),
        "sgd0": job(1, "sgdm", "0", SGD_0),
        "sgd1": job(2, "sgdm", "1", SGD_1),
        "adam0": job(3, "adam", "0", ADAM_0),
        "failed": job(4, "adam", "1", (0.01, 0.05), status="FAILED"),
        "running": job(5, "adam", "1", (0.01, 0.07, 0.09)[:2], status="RUNNING"),
    }
    client.create_run(eid, tags={"fedlm.sweep.parent": "true", "override.seed": "0"})
    return ids


# The paper trained 4 rounds (as the runs did), FedAvgM at server learning rate 1.0 (as the sgdm
# runs did) and FedAdam at 0.01 (the adam runs used 0.1: not comparable).
STUDY = Study(
    name="sweep",
    paper="A. Paper, 2021",
    statistic="mean_last",
    scales={"quick": Scale(target_accuracy=0.45, last_fraction=0.5)},
    numbers=(
        PaperNumber(
            "FedAvgM",
            {"server_optimizer.name": "sgd", "server_optimizer.momentum": "0.9"},
            57.3,
            "Table 2",
            True,
            paper_settings={"server_optimizer.learning_rate": "1.0"},
        ),
        PaperNumber(
            "FedAdam",
            {"server_optimizer.name": "adam"},
            57.0,
            "Table 2",
            shown="57.0",
            paper_settings={"server_optimizer.learning_rate": "0.01"},
        ),
    ),
    paper_settings={"training.rounds": "4"},
)


def test_runs_are_grouped_by_the_swept_overrides_one_finished_run_per_seed(uri, sweep):
    runs, _ = load_runs(uri, "sweep")
    assert len(runs) == 6  # the sweep parent is not a training run
    groups = group_runs(runs)
    # in the order the settings were first run
    assert [g.label for g in groups] == ["server_optimizer=sgdm", "server_optimizer=adam"]
    sgd, adam = groups
    assert [r.run_id for r in sgd.runs] == [sweep["sgd0"], sweep["sgd1"]]
    assert [r.run_id for r in adam.runs] == [sweep["adam0"]]
    assert [(r.run_id, why) for r, why in sgd.left_out] == [
        (sweep["old"], f"superseded by run {sweep['sgd0']}")
    ]
    assert [(r.run_id, why) for r, why in adam.left_out] == [
        (sweep["failed"], "failed"),
        (sweep["running"], "still running (or ended without a status)"),
    ]
    assert (adam.missing_seeds, sgd.missing_seeds) == (["1"], [])


def test_mean_and_std_over_seeds_and_the_study_statistics(uri, sweep):
    runs, _ = load_runs(uri, "sweep")
    sgd, adam = summarize(group_runs(runs), STUDY)
    assert sgd.mean_std("final") == pytest.approx((0.52, math.sqrt(0.0008)))
    assert sgd.mean_std("best") == pytest.approx((0.52, math.sqrt(0.0008)))
    # last 50% of 4 rounds: the evaluations after rounds 3 and 4
    assert sgd.metrics["eval/accuracy"]["mean_last"] == pytest.approx([0.45, 0.50])
    # target 45%: seed 0 reaches it after round 4, seed 1 after round 3
    assert sgd.values["rounds_to_target"] == [4, 3] and sgd.reached == 2
    assert sgd.values["wall_minutes"] == pytest.approx([4.5, 4.5])
    assert sgd.values["train_minutes"] == pytest.approx([2.0, 2.0])
    assert adam.mean_std("final") == (0.25, None)  # one seed: no standard deviation
    assert adam.values["rounds_to_target"] == [] and adam.reached == 0
    assert (sgd.paper.label, adam.paper.label) == ("FedAvgM", "FedAdam")
    assert (sgd.comparable, adam.comparable) == (True, False)
    assert [str(d) for d in adam.differences] == ["server_optimizer.learning_rate 0.1 (paper 0.01)"]


def test_best_loss_is_the_lowest_and_every_metric_has_its_statistics(uri, sweep):
    runs, _ = load_runs(uri, "sweep")
    sgd, _ = summarize(group_runs(runs), STUDY, ["eval/loss", "eval/accuracy"])
    # seed 0: 5 - 4 x (0.2, 0.3, 0.4, 0.5); seed 1: 5 - 4 x (0.22, 0.34, 0.46, 0.54)
    assert sgd.metrics["eval/loss"]["final"] == pytest.approx([3.0, 2.84])
    assert sgd.metrics["eval/loss"]["best"] == pytest.approx([3.0, 2.84])
    assert sgd.metrics["eval/loss"]["mean_last"] == pytest.approx([3.2, 3.0])
    assert sgd.mean_std("final") == pytest.approx((2.92, math.sqrt(0.0128)))  # the first metric
    assert sgd.mean_std("final", "eval/accuracy")[0] == pytest.approx(0.52)


def test_markdown_table_says_what_is_averaged_and_what_is_left_out(uri, sweep):
    runs, _ = load_runs(uri, "sweep")
    text = markdown(summarize(group_runs(runs), STUDY), STUDY, "source line")
    lines = text.splitlines()
    assert lines[0] == "# sweep: report"
    # the one-line caveat comes first, then the source
    assert lines[2] == (
        "**Not comparable with the paper.** 1 of 2 settings did not use the paper's settings: "
        "server_optimizer.learning_rate 0.1 (paper 0.01). The paper's numbers stand apart, "
        "for reference only."
    )
    assert lines[4] == "source line"
    assert lines[6] == (
        "| setting | runs | final acc % | best acc % | mean acc % last 50% of rounds "
        "| std acc % within window | evaluations in window | first round ≥ 45% "
        "| stays ≥ 45% from round | wall time min | training time min | running time min | paper "
        "| paper (not comparable: server_optimizer.learning_rate) |"
    )
    # within the window (rounds 3 and 4): seed 0 0.40, 0.50 (std 7.07), seed 1 0.46, 0.54 (5.66)
    assert lines[8] == (
        "| server_optimizer=sgdm | 2 | 52.0 ± 2.8 | 52.0 ± 2.8 | 47.5 ± 3.5 | 6.36 | 2 "
        "| 3.5 ± 0.7 (2/2) | 3.5 ± 0.7 (2/2) | 4.5 ± 0.0 | 2.0 ± 0.0 | 2.0 ± 0.0 | 57.3 | – |"
    )
    assert lines[9] == (
        "| server_optimizer=adam | 1 | 25.0 | 25.0 | 22.5 | 3.54 | 2 | not reached (0/1) "
        "| not reached (0/1) | 4.5 | 2.0 | 2.0 | – | 57.0 * |"
    )
    assert (
        "- server_optimizer=adam beside FedAdam: not comparable, "
        "server_optimizer.learning_rate 0.1 (paper 0.01)." in text
    )
    assert f"| server_optimizer=adam | 1 | {sweep['failed']} | failed |" in text
    assert (
        f"| server_optimizer=adam | 1 | {sweep['running']} | "
        "still running (or ended without a status) |"
    ) in text
    assert (
        f"| server_optimizer=sgdm | 0 | {sweep['old']} | superseded by run {sweep['sgd0']} |"
        in text
    )
    assert "Missing: server_optimizer=adam has no finished run of seed 1." in text
    assert "- FedAdam: 57.0, Table 2 (* not confirmed against the paper's text)." in text


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


def test_single_runs_without_override_tags_group_by_the_params_that_differ(uri):
    client, eid = experiment(uri, "singles")
    for index, (lr, seed) in enumerate([("0.1", "0"), ("0.1", "1"), ("1.0", "0")]):
        params = {"seed": seed, "client_optimizer.learning_rate": lr, "model.name": "tiny"}
        make_run(client, eid, index, params=params, accuracy=(0.0, 0.1 * (index + 1)))
    groups = group_runs(load_runs(uri, "singles")[0])
    assert [(g.label, len(g.runs)) for g in groups] == [
        ("client_optimizer.learning_rate=0.1", 2),
        ("client_optimizer.learning_rate=1.0", 1),
    ]
    assert groups[1].missing_seeds == ["1"]


def test_a_key_one_run_logged_as_null_and_another_left_out_is_no_setting():
    """Runs logged before the params were cut to the chosen keys hold the others as null."""
    old = RunRecord("a", "a", "FINISHED", params={"seed": "0", "server_optimizer.beta_1": "null"})
    new = RunRecord("b", "b", "FINISHED", params={"seed": "1"})
    assert [(g.label, len(g.runs)) for g in group_runs([old, new])] == [("all runs", 2)]


def test_first_round_at_target_is_counted_in_rounds(uri):
    client, eid = experiment(uri, "target")
    make_run(client, eid, 0, params={"seed": "0"}, accuracy=(0.6, 0.3, 0.55, 0.5, 0.7))
    study = Study(name="t", statistic="first_at_target", scales={"default": Scale(0.54)})
    (row,) = summarize(group_runs(load_runs(uri, "target")[0]), study)
    assert row.values["rounds_to_target"] == [2]  # round 0 (before training) does not count


def test_dp_runs_get_an_epsilon_column_an_epsilon_plot_and_their_histories(uri, tmp_path):
    client, eid = experiment(uri, "dp")
    accuracy = (0.01, 0.10, 0.15, 0.20)
    runs = {}
    for index, (noise, seed, spent) in enumerate(
        [("1.0", "0", (0.5, 0.8, 1.25)), ("1.0", "1", (0.5, 0.8, 1.25)), ("0", "0", [math.inf] * 3)]
    ):
        runs[noise, seed] = make_run(
            client,
            eid,
            index,
            overrides={"aggregator.noise_multiplier": noise, "seed": seed},
            params={"seed": seed},
            accuracy=accuracy,
            epsilon=spent,  # MLflow's SQL store keeps inf as the largest float
        )
    loaded, _ = load_runs(uri, "dp")
    study = Study(name="dp")
    rows = summarize(group_runs(loaded), study)
    assert [row.mean_std("epsilon") for row in rows] == [(1.25, 0.0), (math.inf, None)]
    lines = markdown(rows, study).splitlines()
    assert lines[2].startswith(
        "| setting | runs | final acc % | best acc % | epsilon (replace-one, fixed-size sample) |"
    )
    assert lines[4].startswith(
        "| aggregator.noise_multiplier=1.0 | 2 | 20.0 ± 0.0 | 20.0 ± 0.0 | 1.25 |"
    )
    assert lines[5].startswith("| aggregator.noise_multiplier=0 | 1 | 20.0 | 20.0 | ∞ |")
    text = "\n".join(lines)
    assert "at delta = 0.001 (∞: no noise)" in text
    assert "![eval/accuracy against epsilon](accuracy_vs_epsilon.png)" in text

    files = write_report(rows, study, tmp_path / "a", runs=loaded)
    assert "accuracy_vs_epsilon.png" in [f.name for f in files]
    assert (tmp_path / "a" / "accuracy_vs_epsilon.png").stat().st_size > 0
    # histories.csv (written beside every report) holds the privacy spent per round
    history = list(csv.DictReader((tmp_path / "a" / "histories.csv").open()))
    first = runs["1.0", "0"]
    assert [
        (h["round"], h["value"])
        for h in history
        if h["run_id"] == first and h["metric"] == "privacy/epsilon"
    ] == [("1", "0.5"), ("2", "0.8"), ("3", "1.25")]
    no_noise = runs["0", "0"]
    assert {
        h["value"] for h in history if h["run_id"] == no_noise and h["metric"] == "privacy/epsilon"
    } == {"inf"}  # not the largest float that MLflow's SQLite store keeps for it
    assert {h["metric"] for h in history if h["run_id"] == first} >= {
        "eval/accuracy",
        "privacy/delta",
        "privacy/epsilon",
        "round/seconds",
    }
    # fedlm-report (the shipped dp study), and again from its CSV files alone: the same report,
    # infinite epsilon included
    cli.main(["dp", "--tracking-uri", uri, "--out", str(tmp_path / "b"), "--no-log"])
    cli.main(["dp", "--runs-from", str(tmp_path / "b"), "--out", str(tmp_path / "c")])
    b = (tmp_path / "b" / "report.md").read_text().splitlines()
    c = (tmp_path / "c" / "report.md").read_text().splitlines()
    assert b[3:] == c[3:]
    assert any(
        # the mean over rounds 1-3 (0.10, 0.15, 0.20): its standard deviation 5.00, 3 evaluations
        line.startswith("| aggregator.noise_multiplier=0 | 1 | 20.0 | 20.0 | 15.0 | 5.00 | 3 | ∞ |")
        for line in c
    )
    assert (tmp_path / "c" / "accuracy_vs_epsilon.png").is_file()


def test_shipped_paper_files_load_and_match_their_studies_settings():
    reddi = load_study(study_file("reddi2021"))
    assert (reddi.statistic, reddi.scale("full").last_rounds) == ("mean_last", 100)
    assert reddi.scale("quick").last_fraction == 0.1
    assert {n.label: n.value for n in reddi.numbers}["FedYogi"] == 57.2
    assert reddi.numbers[-1].match == {
        "server_optimizer.name": "sgd",
        "server_optimizer.momentum": "null",
    }
    mcmahan = load_study(study_file("mcmahan2017"))
    assert (mcmahan.statistic, mcmahan.scale("full").target_accuracy) == ("first_at_target", 0.54)
    assert [n.value for n in mcmahan.numbers] == [3906, 549, 164, 152, 41]
    assert find_study("sampling").numbers == ()
    assert find_study("no_such_study") == Study(name="no_such_study")


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


def test_a_metric_choice_tells_apart_settings_that_tie_on_accuracy(uri, tmp_path, capfd):
    # Both plateau at 16.8 % accuracy; their evaluation losses differ (3.67 against 4.37).
    client, eid = experiment(uri, "plateau")
    for index, (optimizer, loss) in enumerate([("sgd", 3.67), ("adam", 4.37)]):
        make_run(
            client,
            eid,
            index,
            overrides={"server_optimizer": optimizer},
            params={"seed": "0"},
            accuracy=(0.01, 0.168, 0.168),
            loss=(4.45, loss + 0.1, loss),
        )
    out = tmp_path / "plateau"
    cli.main(
        ["plateau", "--tracking-uri", uri, "--out", str(out), "--no-log", "--metric", "loss"]
        + ["--metric", "accuracy"]
    )
    text = (out / "report.md").read_text()
    assert (
        "| setting | runs | final eval/loss | lowest eval/loss | wall time min "
        "| training time min | running time min |" in text
    )
    assert "| server_optimizer=sgd | 1 | 3.670 | 3.670 | 2.5 | 1.0 | 1.0 |" in text
    assert "| server_optimizer=adam | 1 | 4.370 | 4.370 | 2.5 | 1.0 | 1.0 |" in text
    assert "## eval/accuracy" in text
    assert "| server_optimizer=sgd | 1 | 16.8 | 16.8 |" in text
    assert (out / "loss_vs_round.png").is_file() and (out / "accuracy_vs_round.png").is_file()

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plateau", "--tracking-uri", uri, "--no-log", "--metric", "eval/nope"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert "--metric='eval/nope' is not allowed: expected a metric the runs logged:" in err
    assert "eval/accuracy, eval/loss" in err


def test_round_axis_has_whole_rounds_only(uri, sweep):
    from fedlm.report.plots import figure

    rows = summarize(group_runs(load_runs(uri, "sweep")[0]), STUDY)
    ticks = figure(rows, "eval/accuracy", "round").axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_html_report_holds_its_tables_caveat_and_plots(uri, sweep, tmp_path):
    runs, _ = load_runs(uri, "sweep")
    write_report(summarize(group_runs(runs), STUDY), STUDY, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<strong>Not comparable with the paper.</strong>" in page
    assert "<th><span>paper (not comparable: server_optimizer.learning_rate)</span></th>" in page
    assert "<td>server_optimizer=sgdm</td><td>2</td><td>52.0 ± 2.8</td>" in page
    assert page.count('<img src="data:image/png;base64,') == 2  # nothing to fetch beside it


def test_a_paper_file_without_settings_is_never_comparable(uri, sweep):
    study = dataclasses.replace(STUDY, paper_settings=None)
    study = dataclasses.replace(
        study, numbers=tuple(dataclasses.replace(n, paper_settings={}) for n in STUDY.numbers)
    )
    sgd, adam = summarize(group_runs(load_runs(uri, "sweep")[0]), study)
    assert not sgd.comparable and not adam.comparable
    assert [str(d) for d in sgd.differences] == [
        "paper_settings ? (paper not stated in paper.yaml)"
    ]


REDDI2021 = ("fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi")
MCMAHAN2017 = ("fedsgd", "fedavg_e1_b50", "fedavg_e1_b10", "fedavg_e5_b50", "fedavg_e5_b10")


def study_runs(*overrides: str, study="reddi2021", methods=REDDI2021) -> list[RunRecord]:
    """One finished run per method of ``study`` with the params the shipped config logs."""
    runs = []
    for method in methods:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            chosen = [f"+experiment={study}", f"{study}={method}", "output_dir=."]
            cfg = compose("train", overrides=[*chosen, *overrides])
        with open_dict(cfg):
            cfg.pop("hydra", None)
        params = run_info.params(dataclasses.asdict(OmegaConf.to_object(cfg)))
        tags = {f"override.{study}": method}
        runs.append(RunRecord(method, method, "FINISHED", params=params, tags=tags))
    return runs


def test_the_shipped_mcmahan2017_study_is_comparable_at_full_scale():
    # Its paper_settings must be what its config sets (C = 0.1 of fedlm's clients included).
    study = load_study(study_file("mcmahan2017"))
    rows = summarize(group_runs(study_runs(study="mcmahan2017", methods=MCMAHAN2017)), study)
    assert {row.group.label: (row.paper.label, row.comparable) for row in rows} == {
        "mcmahan2017=fedsgd": ("FedSGD (E=1, B=inf)", True),
        "mcmahan2017=fedavg_e1_b50": ("FedAvg E=1 B=50", True),
        "mcmahan2017=fedavg_e1_b10": ("FedAvg E=1 B=10", True),
        "mcmahan2017=fedavg_e5_b50": ("FedAvg E=5 B=50", True),
        "mcmahan2017=fedavg_e5_b10": ("FedAvg E=5 B=10", True),
    }, [str(d) for d in rows[0].differences]


def test_the_shipped_mcmahan2017_full_scale_stops_at_the_target_its_report_counts_rounds_to():
    study = load_study(study_file("mcmahan2017"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=mcmahan2017", "output_dir=."])
    stop_at = OmegaConf.to_object(cfg).training.stop_at
    assert (stop_at.metric, stop_at.value) == (study.metric, study.scale("full").target_accuracy)
    assert str(stop_at) == "eval/accuracy >= 0.54"
    assert cfg.eval.every == 1  # every round is checked
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        quick = compose("train", overrides=["+experiment=mcmahan2017", "experiment_scale=quick"])
    assert quick.training.stop_at.metric is None  # the quick scale runs its 15 rounds


def test_the_shipped_reddi2021_study_is_comparable_at_full_scale_only():
    study = load_study(study_file("reddi2021"))
    full = summarize(group_runs(study_runs()), study)
    assert {row.group.label: (row.paper.label, row.comparable) for row in full} == {
        "reddi2021=fedavg": ("FedAvg", True),
        "reddi2021=fedavgm": ("FedAvgM", True),
        "reddi2021=fedadagrad": ("FedAdagrad", True),
        "reddi2021=fedadam": ("FedAdam", True),
        "reddi2021=fedyogi": ("FedYogi", True),
    }
    quick = summarize(group_runs(study_runs("experiment_scale=quick")), study)
    assert not any(row.comparable for row in quick)
    assert [d.key for d in quick[0].differences] == [
        "training.rounds",
        "training.max_batches_per_client",
        "eval.max_clients",
    ]
    text = markdown(quick, study)
    assert text.splitlines()[2].startswith(
        "**Not comparable with the paper.** These runs did not use the paper's settings: "
        "training.rounds 30 (paper 1200); training.max_batches_per_client 4 (paper null); "
        "eval.max_clients 20 (paper null)."
    )
    assert "| paper |" not in text
    assert (
        "paper (not comparable: training.rounds, training.max_batches_per_client, "
        "eval.max_clients) |" in text
    )


# -- time that excludes interruptions --------------------------------------------------------

HOURS_10 = 10 * 3600.0


def record(
    run_id="r",
    *,
    seed="0",
    rounds=4,
    trained=None,
    every=2,
    accuracy=None,
    round_seconds=30.0,
    eval_seconds=10.0,
    gap_after=None,
    status="FINISHED",
    params=None,
    tags=None,
    start=T0,
):
    """A run as fedlm-train logs one, by hand: ``trained`` rounds (default: all) of
    ``round_seconds`` each, evaluated after round 0 and every ``every`` rounds (``accuracy(round)``,
    default round / (2 x rounds), and ``eval_seconds`` each), each round logged 60 s after the one
    before, and ``gap_after`` a round after which the run stood still for 10 hours (resumed)."""
    trained = rounds if trained is None else trained
    accuracy = accuracy or (lambda step: step / (2 * rounds))

    def at(step):
        return start + 60.0 * step + (HOURS_10 if gap_after is not None and step > gap_after else 0)

    evaluated = [s for s in range(trained + 1) if s % every == 0 or s == rounds]
    history = {
        "eval/accuracy": [(s, accuracy(s), at(s)) for s in evaluated],
        "round/seconds": [(s, round_seconds, at(s)) for s in range(1, trained + 1)],
    }
    if eval_seconds is not None:
        history["eval/seconds"] = [(s, eval_seconds, at(s)) for s in evaluated]
    params = {"seed": seed, "training.rounds": str(rounds), **(params or {})}
    return RunRecord(
        run_id,
        run_id,
        status,
        params=params,
        tags=dict(tags or {}),
        start_time=start,
        end_time=at(trained) + 30.0 if status != "RUNNING" else None,
        history=history,
    )


def test_the_time_axis_is_running_time_without_the_interruption_of_a_resumed_run(tmp_path):
    from fedlm.report.plots import figure
    from fedlm.report.summary import points

    # Rounds of 30 s, evaluations of 10 s after rounds 0, 2 and 4, and 10 hours standing still
    # after round 2 before the run was resumed from its round-2 checkpoint.
    run = record(gap_after=2, tags={"fedlm.resumes": "1", "fedlm.resumed_from_round": "2"})
    assert points(run, "eval/accuracy") == [(0, 0.0, 10.0), (2, 0.25, 80.0), (4, 0.5, 150.0)]
    study = Study(name="t")
    rows = summarize(group_runs([run]), study)
    assert rows[0].values["wall_minutes"] == pytest.approx([(4 * 60 + HOURS_10 + 30) / 60])
    assert rows[0].values["train_minutes"] == pytest.approx([2.0])  # 4 x 30 s
    assert rows[0].values["running_minutes"] == pytest.approx([2.5])  # + 3 x 10 s
    text = markdown(rows, study)
    assert "| wall time min | training time min | running time min |" in text
    assert "| all runs | 1 | 50.0 | 50.0 | 604.5 | 2.0 | 2.5 |" in text
    assert (
        "Resumed: all runs seed 0 (run r) was interrupted and resumed (1 resume, the last from "
        "round 2): its wall time spans its interruptions; its running time does not." in text
    )
    assert "![eval/accuracy against running time](accuracy_vs_time.png)" in text
    ax = figure(rows, "eval/accuracy", "time").axes[0]
    assert ax.get_xlabel() == (
        "running time (minutes of training and evaluation, interruptions excluded)"
    )
    assert list(ax.lines[0].get_xdata()) == pytest.approx([10 / 60, 80 / 60, 150 / 60])

    # The same from the report's CSV files: the resume tags and eval/seconds travel with them.
    write_report(rows, study, tmp_path / "a", runs=[run])
    (back,) = read_runs(tmp_path / "a")
    assert (back.resumes, back.tags["fedlm.resumed_from_round"]) == (1, "2")
    assert points(back, "eval/accuracy") == pytest.approx(points(run, "eval/accuracy"))
    assert markdown(summarize(group_runs([back]), study), study) == text


def test_running_time_and_resumes_are_read_from_mlflow(uri):
    client, eid = experiment(uri, "resumed")
    run_id = make_run(client, eid, 0, params={"seed": "0"}, accuracy=(0.1, 0.2, 0.3))
    # eval/seconds of 10 s after rounds 0, 1 and 2, beside round/seconds of 30 s
    client.log_batch(
        run_id, metrics=[Metric("eval/seconds", 10.0, int(T0 * 1000) + s, s) for s in range(3)]
    )
    client.set_tag(run_id, "fedlm.resumes", "2")
    (run,) = load_runs(uri, "resumed")[0]
    assert run.resumes == 2
    (row,) = summarize(group_runs([run]), Study(name="t"))
    assert row.values["running_minutes"] == pytest.approx([(2 * 30 + 3 * 10) / 60])
    assert "was interrupted and resumed (2 resumes)" in markdown([row], Study(name="t"))


def test_a_run_without_round_seconds_is_plotted_against_wall_time():
    from fedlm.report.plots import figure
    from fedlm.report.summary import points

    run = record(gap_after=2)
    del run.history["round/seconds"], run.history["eval/seconds"]
    assert points(run, "eval/accuracy") == [
        (0, 0.0, 0.0),
        (2, 0.25, 120.0),
        (4, 0.5, 240 + HOURS_10),
    ]
    rows = summarize(group_runs([run]), Study(name="t"))
    assert "| 604.5 | – | – |" in markdown(rows, Study(name="t"))
    ax = figure(rows, "eval/accuracy", "time").axes[0]
    assert ax.get_xlabel() == "wall time (minutes since the run started)"


def test_runs_csv_written_before_the_time_columns_still_reads(tmp_path):
    from fedlm.report.summary import points

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


# -- which evaluations a mean over the last rounds averages ------------------------------------

FULL = Study(name="t", statistic="mean_last", scales={"full": Scale(last_rounds=100)})


def test_the_mean_over_the_last_rounds_says_which_evaluations_it_averages():
    run = record(rounds=1200, every=10, params={"experiment_scale": "full"})
    (row,) = summarize(group_runs([run]), FULL)
    # accuracy round / 2400 after rounds 1110, 1120, ..., 1200
    assert row.metrics["eval/accuracy"]["mean_last"] == pytest.approx([1155 / 2400])
    assert (
        "Mean acc % last 100 rounds: the mean over the 10 evaluations in rounds 1101–1200 "
        "(every 10 rounds), in the one run." in markdown([row], FULL)
    )
    other = record("q", seed="1", rounds=1200, every=20, params={"experiment_scale": "full"})
    rows = summarize(group_runs([run, other]), FULL)
    assert (
        "Mean acc % last 100 rounds: the runs differ: all runs seed 0: the mean over the 10 "
        "evaluations in rounds 1101–1200 (every 10 rounds); all runs seed 1: the mean over the 5 "
        "evaluations in rounds 1101–1200 (every 20 rounds)." in markdown(rows, FULL)
    )


def test_the_mean_over_a_fraction_of_rounds_names_rounds_and_count():
    quick = Study(name="t", statistic="mean_last", scales={"quick": Scale(last_fraction=0.1)})
    runs = [
        record(str(s), seed=str(s), rounds=30, params={"experiment_scale": "quick"}) for s in (0, 1)
    ]
    text = markdown(summarize(group_runs(runs), quick), quick)
    assert (
        "Mean acc % last 10% of rounds: the mean over the 2 evaluations in rounds 28–30 "
        "(every 2 rounds), in each of the 2 runs." in text
    )


# -- the differences from the paper, stated in the report ---------------------------------------


def paper_file(tmp_path, extra: str) -> str:
    path = tmp_path / "paper.yaml"
    path.write_text(
        "study: t\npaper: A. Paper\nmetric: eval/accuracy\nstatistic: final\n"
        "paper_settings: {training.rounds: 4}\n"
        "numbers:\n  - {label: FedAvg, match: {}, value: 56.9, source: Table 2, confirmed: true}\n"
        + extra
    )
    return str(path)


def test_the_paper_files_differences_are_listed_where_the_papers_numbers_are_shown(tmp_path):
    study = load_study(
        paper_file(
            tmp_path,
            "differences: ['data: another build', 'loss: padding left out']\n"
            "scales:\n  full:\n    differences: [evaluation every 10 rounds]\n  quick: {}\n",
        )
    )
    assert study.differences == ("data: another build", "loss: padding left out")
    assert study.scale("full").differences == ("evaluation every 10 rounds",)
    full = record(params={"experiment_scale": "full"})
    text = markdown(summarize(group_runs([full]), study), study)
    assert (
        "## Differences from the paper\n\n- data: another build\n- loss: padding left out\n"
        "- evaluation every 10 rounds\n" in text
    )
    quick = record(params={"experiment_scale": "quick"})
    text = markdown(summarize(group_runs([quick]), study), study)
    assert (
        "## Differences from the paper\n\n- data: another build\n- loss: padding left out\n\n"
        in text
    )
    # Both scales at once: each scale's own are named.
    quick_1 = record("q", seed="1", params={"experiment_scale": "quick"})
    rows = summarize(group_runs([full, quick_1], ["experiment_scale"]), study)
    assert "- Scale full: evaluation every 10 rounds" in markdown(rows, study)
    # Without the paper's numbers (another metric first) there is nothing to differ from.
    rows = summarize(group_runs([full]), study, ["eval/loss", "eval/accuracy"])
    full.history["eval/loss"] = full.history["eval/accuracy"]
    assert "Differences from the paper" not in markdown(rows, study)


@pytest.mark.parametrize(
    ("extra", "key", "value"),
    [
        ("differences: data differs\n", "differences", "'data differs'"),
        ("differences: [1, 2]\n", "differences", "[1, 2]"),
        ("scales:\n  full: {differences: {a: b}}\n", "scales.full.differences", "{'a': 'b'}"),
        ("scales:\n  full: [differences]\n", "scales.full", "['differences']"),
    ],
)
def test_a_differences_entry_that_is_not_a_list_of_strings_is_refused(tmp_path, extra, key, value):
    path = paper_file(tmp_path, extra)
    with pytest.raises(ConfigError) as error:
        load_study(path)
    assert str(error.value).startswith(f"{path}: {key}={value} is not allowed: expected a ")


def test_the_shipped_reddi2021_report_states_its_differences_from_the_paper():
    study = load_study(study_file("reddi2021"))
    text = markdown(summarize(group_runs(study_runs()), study), study)
    section = text.split("## Differences from the paper\n\n", 1)[1].split("\n\n", 1)[0]
    items = section.splitlines()
    assert [item.split(":", 1)[0] for item in items] == [
        "- Data",
        "- Training loss",
        "- Evaluation",
        "- Seeds",
    ]
    assert "1,117 clients (25,871 training / 6,241 test examples)" in items[0]
    assert "715 clients (16,068 / 2,356 examples" in items[0]
    assert "averages 100 evaluations, as the paper" in items[2]
    # At the quick scale the paper's numbers stand apart, with the differences of every scale.
    quick = summarize(group_runs(study_runs("experiment_scale=quick")), study)
    items = markdown(quick, study).split("## Differences from the paper\n\n", 1)[1]
    assert [i.split(":", 1)[0] for i in items.split("\n\n", 1)[0].splitlines()] == [
        "- Data",
        "- Training loss",
    ]


# -- an interim report of runs that have not finished ------------------------------------------


def running_at_312() -> RunRecord:
    """Seed 0 of a full-scale run, still running: it has trained 312 of its 1200 rounds and was
    evaluated every 10 rounds."""
    return record(
        "a",
        rounds=1200,
        trained=312,
        every=10,
        status="RUNNING",
        params={"experiment_scale": "full"},
    )


def test_unfinished_runs_are_left_out_unless_asked_for_and_then_marked():
    # Seed 0 is at round 312 of 1200; seed 1 finished.
    running = running_at_312()
    done = record("b", seed="1", rounds=1200, every=10, params={"experiment_scale": "full"})
    (row,) = summarize(group_runs([running, done]), FULL)
    assert [r.run_id for r in row.group.runs] == ["b"]
    assert markdown([row], FULL).startswith("# t: report\n")

    (row,) = summarize(group_runs([running, done], include_unfinished=True), FULL)
    assert [r.run_id for r in row.group.runs] == ["b", "a"] and row.group.left_out == []
    # Never a value of other rounds: no final value and no mean over rounds 1101-1200 for seed 0.
    assert row.metrics["eval/accuracy"]["final"] == [0.5]
    assert row.metrics["eval/accuracy"]["mean_last"] == pytest.approx([1155 / 2400])
    assert row.metrics["eval/accuracy"]["best"] == [0.5, 310 / 2400]
    lines = markdown([row], FULL).splitlines()
    assert lines[0] == "# t: interim report, 1 of 2 runs not finished"
    assert lines[2] == (
        "**Interim report** (`--include-unfinished`): all runs seed 0 (run a, running) has "
        "trained 312 of 1200 rounds. A final value or a mean over the last rounds that a run has "
        "not reached yet is –, never a value of other rounds; its best value and rounds to the "
        "target are those of the rounds it has run."
    )
    assert lines[6].startswith(
        "| all runs | 2 (1 unfinished: last round 312 of 1200) | 50.0 (1 of 2 runs) "
        "| 31.5 ± 26.2 | 48.1 (1 of 2 runs) |"
    )
    text = "\n".join(lines)
    assert (
        "the runs differ: all runs seed 1: the mean over the 10 evaluations in rounds 1101–1200 "
        "(every 10 rounds); all runs seed 0: not reached yet (rounds 1101–1200; last round "
        "trained 312)." in text
    )


def test_an_unfinished_run_alone_has_no_final_value_or_mean_and_its_wall_time_so_far():
    running = running_at_312()
    (row,) = summarize(group_runs([running], include_unfinished=True), FULL)
    lines = markdown([row], FULL).splitlines()
    assert lines[0] == "# t: interim report, 1 of 1 runs not finished"
    # best: after round 310; wall time to its last logged point (round 312, 60 s a round);
    # training 312 x 30 s; running time + 32 evaluations (rounds 0, 10, ..., 310) x 10 s
    assert lines[6] == (
        "| all runs | 1 (unfinished: last round 312 of 1200) | – | 12.9 | – | – | – | 312.0 "
        "| 156.0 | 161.3 |"
    )


def test_a_seed_counts_its_finished_run_before_an_unfinished_one():
    old = record("old", status="FINISHED", start=T0)
    failed = record("failed", trained=1, status="FAILED", start=T0 + 1000)
    killed = record("killed", trained=2, status="KILLED", start=T0 + 2000)
    (group,) = group_runs([old, failed, killed], include_unfinished=True)
    assert [r.run_id for r in group.runs] == ["old"]
    assert [(r.run_id, why) for r, why in group.left_out] == [
        ("failed", "superseded by run killed"),
        ("killed", "killed; seed 0 counts its finished run old"),
    ]
    (group,) = group_runs([failed, killed], include_unfinished=True)
    assert [r.run_id for r in group.runs] == ["killed"]


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


def test_by_a_config_group_chosen_on_a_single_runs_command_line(tmp_path):
    # A single run has no override tags; its command line (fedlm.hydra.overrides) names the
    # config groups it chose, which are no params: --by reddi2021 labels it, from the store or
    # from runs.csv.
    line = "+experiment=reddi2021 reddi2021=fedadagrad seed=0 tracking.checkpoint_every=10"
    tags = {"fedlm.hydra.overrides": line}
    runs = [
        record("a", tags=tags, params={"client_optimizer.learning_rate": "1.0"}),
        record("b", tags={"fedlm.hydra.overrides": "reddi2021=fedavg 'seed=1'"}),
    ]
    assert runs[0].setting("reddi2021") == "fedadagrad"
    assert runs[0].setting("experiment") == "reddi2021"
    assert runs[0].setting("client_optimizer.learning_rate") == "1.0"  # the param
    assert runs[0].setting("model.name") is None
    labels = [row.group.label for row in summarize(group_runs(runs, ["reddi2021"]), FULL)]
    assert labels == ["reddi2021=fedadagrad", "reddi2021=fedavg"]
    write_report(summarize(group_runs(runs, ["reddi2021"]), FULL), FULL, tmp_path, runs=runs)
    back = read_runs(tmp_path)
    assert [run.setting("reddi2021") for run in back] == ["fedadagrad", "fedavg"]


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


TO_54 = Study(name="t", statistic="first_at_target", scales={"full": Scale(target_accuracy=0.54)})


def stopped_run(run_id: str, seed: str, at: int) -> RunRecord:
    """A full-scale run of up to 4000 rounds, evaluated every round, that reached 54% after round
    ``at`` and stopped there at its training.stop_at target, FINISHED."""
    return record(
        run_id,
        seed=seed,
        rounds=4000,
        trained=at,
        every=1,
        accuracy=lambda step: 0.54 if step >= at else 0.3,
        params={"experiment_scale": "full"},
        tags={"fedlm.stopped_at_round": str(at)},
    )


def test_a_run_stopped_at_its_target_is_complete_and_its_rounds_to_target_are_its_last(tmp_path):
    runs = [stopped_run("a", "0", 164), stopped_run("b", "1", 170)]
    (row,) = summarize(group_runs(runs), TO_54)  # no --include-unfinished needed
    assert [run.run_id for run in row.group.runs] == ["a", "b"] and row.group.left_out == []
    assert row.values["rounds_to_target"] == [164, 170]
    assert row.values["rounds_to_stay"] == [164, 170]
    assert row.metrics["eval/accuracy"]["final"] == [0.54, 0.54]  # at round 164, 170 of 4000
    text = markdown([row], TO_54)
    assert text.startswith("# t: report\n")  # not an interim report
    assert (
        "Stopped at the target (`training.stop_at`): all runs seed 0 at round 164 of 4000; all "
        "runs seed 1 at round 170 of 4000. Each ended after the first evaluated round that "
        "reached it and is complete there" in text
    )
    # runs.csv keeps the tag: the report made again from the files reads the same.
    write_report([row], TO_54, tmp_path, runs=runs)
    back = read_runs(tmp_path)
    assert [run.tags["fedlm.stopped_at_round"] for run in back] == ["164", "170"]
    (again,) = summarize(group_runs(back), TO_54)
    assert again.values["rounds_to_target"] == [164, 170]
    assert again.metrics["eval/accuracy"]["final"] == [0.54, 0.54]


def test_dp_rows_show_each_epsilon_in_its_adjacencys_column_and_the_noise_on_the_mean(tmp_path):
    """Fixed-size sampling: replace-one epsilon; Poisson: add-or-remove; the noise on the mean is
    noise multiplier x the last clip / clients per round; the non-private baseline has none."""

    def dp_run(start, setting, sampler, noise, clip, epsilon):
        params = {"seed": "0", "sampler.name": sampler, "training.clients_per_round": "100"}
        history = {"eval/accuracy": [(0, 0.3, 0.0), (2, 0.4, 1.0)]}
        if noise is not None:
            params["aggregator.noise_multiplier"] = noise
            history["aggregator/clip_norm"] = [(1, 0.2, 0.0), (2, clip, 1.0)]
            history["privacy/epsilon"] = [(1, epsilon / 2, 0.0), (2, epsilon, 1.0)]
        tags = {"override.dp": setting}
        run_id = f"run{start}"
        return RunRecord(run_id, setting, "FINISHED", params, tags, start, start + 1, history)

    runs = [
        dp_run(1, "nonprivate", "uniform", None, None, None),
        dp_run(2, "noise1.0", "uniform", "1.0", 0.5, 8.0),
        dp_run(3, "noise1.0_poisson", "poisson", "1.0", 0.4, 1.5),
    ]
    rows = summarize(group_runs(runs, ["dp"]), Study(name="dp"))
    assert [row.mean_std("noise_on_mean")[0] for row in rows] == [None, 0.005, 0.004]
    table = main_table(rows, Study(name="dp"))
    replace_one = table.header.index("epsilon (replace-one, fixed-size sample)")
    add_remove = table.header.index("epsilon (add-or-remove, Poisson sample)")
    noise = table.header.index("noise on the mean")
    assert [(line[replace_one], line[add_remove], line[noise]) for line in table.rows] == [
        ("–", "–", "–"),
        ("8", "–", "0.005"),
        ("–", "1.5", "0.004"),
    ]
    files = write_report(rows, Study(name="dp"), tmp_path, runs=runs)
    assert (tmp_path / "accuracy_vs_noise.png") in files
    assert (
        "![eval/accuracy against the noise on the mean](accuracy_vs_noise.png)"
        in (tmp_path / "report.md").read_text()
    )
