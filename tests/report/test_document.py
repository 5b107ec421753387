"""The report's tables: what is averaged, what is left out, epsilon columns, a table per
metric, unfinished runs.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import csv
import math

import pytest
from report_runs import FULL, STUDY, experiment, make_run, running_at_312

from fedlm.cli import report as cli
from fedlm.report import (
    Study,
    group_runs,
    markdown,
    summarize,
    write_report,
)
from fedlm.report.document import main_table
from fedlm.tracking.runs import RunRecord, load_runs


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
