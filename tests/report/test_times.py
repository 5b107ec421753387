"""A report's running time leaves out a stopped process's pause, and its notes say so."""

import pytest
from mlflow.entities import Metric
from report_runs import T0, experiment, make_run

from fedlm.report import (
    Study,
    group_runs,
    markdown,
    summarize,
    times,
)
from fedlm.report.notes import time_notes
from fedlm.report.summary import Group, Row
from fedlm.tracking.runs import RunRecord, load_runs


def stopped_run() -> RunRecord:
    """Rounds of 10 s, round 6 stopped for 4,916 s (as round 87 of the full-scale FedAvg run)."""
    seconds = [10.0, 10.0, 10.0, 10.0, 10.0, 4916.0, 10.0]
    history = {
        "round/seconds": [(r, s, 0.0) for r, s in enumerate(seconds, start=1)],
        "eval/seconds": [(0, 5.0, 0.0), (7, 5.0, 0.0)],
        "eval/accuracy": [(0, 0.1, 0.0), (7, 0.4, 0.0)],
    }
    return RunRecord("r1", "fedavg seed=0", "FINISHED", params={"seed": "0"}, history=history)


def test_a_stopped_round_counts_as_the_median_of_the_rounds_before_it():
    run = stopped_run()
    assert times.training_minutes(run) == pytest.approx(70 / 60)
    assert times.running_minutes(run) == pytest.approx(80 / 60)
    assert times.clock(run)(7, 0.0) == pytest.approx(80)
    assert times.stopped_points(run) == [("round/seconds", 6, 4916.0, 10.0)]


def test_the_notes_name_the_stopped_round_and_what_was_counted():
    run = stopped_run()
    row = Row(Group({"reddi2021": "fedavg"}, runs=[run]), None, {}, {}, None)
    notes = time_notes([row])
    assert "counts as that median (a stopped process; each is named below)" in notes[0]
    assert notes[1:] == [
        "Stopped: in reddi2021=fedavg seed 0 (run r1), round 6 took 4,916 s (`round/seconds`), "
        "more than 10 times the median of the 20 before it (10.0 s): taken as a stopped process, "
        "it counts as that median in training and running time."
    ]


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
