"""fedlm.report.summary: runs grouped by their swept settings and their rows, mean ± std over
seeds, the study's statistics, the paper's number and the paper settings the runs do not share.
(Not test_summary.py: pytest needs unique basenames, and tests/tracking/test_summary.py is
fedlm.tracking.summary's.)

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import dataclasses
import math

import pytest
from report_runs import (
    FULL,
    MCMAHAN2017,
    STUDY,
    T0,
    TO_54,
    experiment,
    make_run,
    record,
    running_at_312,
    stopped_run,
    study_runs,
)

from fedlm.report import (
    Scale,
    Study,
    group_runs,
    load_study,
    markdown,
    read_runs,
    summarize,
    write_report,
)
from fedlm.report.study import study_file
from fedlm.tracking.runs import RunRecord, load_runs


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
