"""A multirun's parent run: made before the jobs by the Hydra callback, found by every job."""

import dataclasses
import re

import mlflow
import pytest
from omegaconf import OmegaConf

from fedlm.cli.callbacks import (
    MlflowSweepCallback,
    end_unfinished_sweeps,
    swept_keys,
    swept_values,
)
from fedlm.config import TrackingConfig, TrainConfig
from fedlm.tracking import build_tracker, run_info, store
from fedlm.tracking.runs import log_report


def multirun_config(sweep_dir, enabled=True):
    return OmegaConf.create(
        {
            "tracking": {"enabled": enabled, "uri": None, "experiment_name": "sweeps"},
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "overrides": {"task": ["server_optimizer=sgd,adam", "training.rounds=2"]},
            },
        }
    )


def test_swept_keys_are_those_with_several_values():
    overrides = ["a=1,2", "b=3", "c=range(1,3)", "d=choice(x,y)", "+e=5"]
    assert swept_keys(overrides) == ["a", "c", "d"]


def test_a_studys_own_sweep_counts_unless_the_command_line_fixes_it():
    params = {"reddi2021": "fedavg,fedadam", "seed": "0,1", "b": "7,8"}
    assert swept_keys(["a=1,2", "seed=3", "b=5,6"], params) == ["a", "b", "reddi2021"]
    assert swept_values(["a=1,2", "seed=3", "b=5,6"], params) == {
        "a": "1,2",
        "b": "5,6",
        "reddi2021": "fedavg,fedadam",
    }


ACCURACY = {"sgd": [0.1, 0.25, 0.2], "adam": [0.1, 0.2, 0.3]}


@pytest.mark.parametrize("time_dir", ["12-00-00", "it's noon"])
def test_sweep_parent_is_made_once_and_each_job_nests_under_it(tmp_path, time_dir):
    sweep_dir = tmp_path / "multirun" / "2026-01-01" / time_dir
    callback = MlflowSweepCallback()
    callback.on_multirun_start(multirun_config(sweep_dir))
    callback.on_multirun_start(multirun_config(sweep_dir))  # a resumed sweep: the same parent

    client, experiment_id = store.prepare_store(None, "sweeps")
    runs = client.search_runs([experiment_id])
    assert len(runs) == 1
    parent = runs[0]
    assert parent.data.tags["fedlm.sweep"] == str(sweep_dir.resolve())
    assert parent.data.tags["fedlm.sweep.keys"] == "server_optimizer"
    assert re.fullmatch(r"sweep server_optimizer \d{4}-\d\d-\d\d \d\d:\d\d", parent.info.run_name)
    assert parent.data.params == {"server_optimizer": "sgd,adam"}
    assert parent.data.tags["mlflow.source.name"] == "fedlm-train"  # the runs table's Source
    assert parent.data.tags["mlflow.note.content"] == (
        "Reproduce with:\n\n"
        "    uv run fedlm-train -m server_optimizer=sgd,adam training.rounds=2\n\n"
        "Overrides:\n- `server_optimizer=sgd,adam`\n- `training.rounds=2`\n"
    )

    job_ids = []
    for job_num, optimizer in enumerate(["sgd", "adam"]):
        cfg = TrainConfig(output_dir=str(sweep_dir / str(job_num)))
        cfg.tracking = TrackingConfig(experiment_name="sweeps")
        context = {
            "hydra.mode": "MULTIRUN",
            "hydra.sweep_dir": str(sweep_dir),
            "hydra.job_num": str(job_num),
            "hydra.overrides": f"server_optimizer={optimizer} training.rounds=2",
        }
        tracker = build_tracker(cfg, context)
        tracker.start(dataclasses.asdict(cfg))
        for round_num, accuracy in enumerate(ACCURACY[optimizer]):
            tracker.log_metrics({"eval/accuracy": accuracy}, step=round_num)
            if round_num:
                tracker.log_metrics({"round/seconds": 30.0}, step=round_num)
        tracker.finish("FINISHED")
        job_ids.append(tracker.run_id)
        tags = client.get_run(tracker.run_id).data.tags
        assert tags[run_info.PARENT_RUN_TAG] == parent.info.run_id
        assert tags["fedlm.sweep"] == str(sweep_dir.resolve())
        assert tags["fedlm.sweep.job"] == str(job_num)
        assert tags["override.server_optimizer"] == optimizer
        assert tags["fedlm.sweep.values"] == f"server_optimizer={optimizer}"
        assert tags["mlflow.runName"] == optimizer
        assert (tags["mlflow.source.name"], tags["mlflow.source.type"]) == ("fedlm-train", "LOCAL")

    callback.on_multirun_end(multirun_config(sweep_dir))
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    table = (
        f"# {parent.info.run_name}\n\n"
        f"Sweep `{sweep_dir.resolve()}`, finished: 2 job(s), 2 finished.\n"
        f"Best by final eval/accuracy: **adam** (run `{job_ids[1]}`), 0.3000.\n\n"
        "| job | run | status | final eval/accuracy | best eval/accuracy (round) |\n"
        "|---:|---|---|---:|---:|\n"
        "| 0 | sgd | FINISHED | 0.2000 | 0.2500 (1) |\n"
        "| 1 | adam | FINISHED | 0.3000 | 0.3000 (2) |\n"
    )
    report = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/report.md")
    assert report == table
    assert parent.data.tags["mlflow.note.content"].startswith(table + "\n\nReproduce with:")
    assert parent.data.tags["fedlm.sweep.best_run"] == job_ids[1]
    assert parent.data.metrics == {
        "summary/final_eval_accuracy": 0.3,
        "summary/best_eval_accuracy": 0.3,
        "summary/best_round": 2.0,
        "summary/rounds": 2.0,
        "summary/running_minutes": 1.0,
        "sweep/jobs": 2.0,
        "sweep/finished": 2.0,
    }
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_id for r in children) == sorted(job_ids)

    # A report of the sweep's runs is nested under the sweep; one of runs of no sweep is not.
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("# a report\n")
    summary = log_report(None, "sweeps", tmp_path / "report", job_ids)
    report_tags = client.get_run(summary).data.tags
    assert report_tags[run_info.PARENT_RUN_TAG] == parent.info.run_id
    assert report_tags["mlflow.source.name"] == "fedlm-report"
    single = build_tracker(TrainConfig(output_dir=str(tmp_path / "single")), {})
    single.cfg.tracking.experiment_name = "sweeps"
    single.start(dataclasses.asdict(single.cfg))
    summary = log_report(None, "sweeps", tmp_path / "report", [job_ids[0], single.run_id])
    assert run_info.PARENT_RUN_TAG not in client.get_run(summary).data.tags
    callback.on_multirun_end(multirun_config(sweep_dir))  # the sweep resumed and ended again
    assert client.get_run(parent.info.run_id).data.metrics["sweep/jobs"] == 2  # not the report


def test_a_failed_sweep_is_summarised_too(tmp_path):
    sweep_dir = tmp_path / "multirun" / "failed"
    MlflowSweepCallback().on_multirun_start(multirun_config(sweep_dir))
    end_unfinished_sweeps()  # as fedlm-train's main() does after an error
    client, experiment_id = store.prepare_store(None, "sweeps")
    (parent,) = client.search_runs([experiment_id])
    assert parent.info.status == "FAILED"
    report = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/report.md")
    assert f"Sweep `{sweep_dir.resolve()}`, failed: 0 job(s), 0 finished.\n" in report
    assert parent.data.metrics == {"sweep/jobs": 0.0, "sweep/finished": 0.0}


def test_tracking_off_makes_no_store(tmp_path, results_dir):
    (results_dir / "mlflow.db").unlink()
    MlflowSweepCallback().on_multirun_start(multirun_config(tmp_path / "s", enabled=False))
    assert not (results_dir / "mlflow.db").exists()
