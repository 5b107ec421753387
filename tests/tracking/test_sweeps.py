"""A multirun's parent run: made before the jobs by the Hydra callback, found by every job."""

import dataclasses

import pytest
from omegaconf import OmegaConf

from fedlm.cli.callbacks import MlflowSweepCallback, swept_keys
from fedlm.config import TrackingConfig, TrainConfig
from fedlm.tracking import build_tracker, run_info, store


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
    assert parent.info.run_name == "sweep server_optimizer"

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
        tracker.finish("FINISHED")
        job_ids.append(tracker.run_id)
        tags = client.get_run(tracker.run_id).data.tags
        assert tags[run_info.PARENT_RUN_TAG] == parent.info.run_id
        assert tags["fedlm.sweep"] == str(sweep_dir.resolve())
        assert tags["fedlm.sweep.job"] == str(job_num)
        assert tags["override.server_optimizer"] == optimizer
        assert tags["fedlm.sweep.values"] == f"server_optimizer={optimizer}"
        assert tags["mlflow.runName"] == f"server_optimizer={optimizer}"

    callback.on_multirun_end(multirun_config(sweep_dir))
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_id for r in children) == sorted(job_ids)


def test_tracking_off_makes_no_store(tmp_path, results_dir):
    (results_dir / "mlflow.db").unlink()
    MlflowSweepCallback().on_multirun_start(multirun_config(tmp_path / "s", enabled=False))
    assert not (results_dir / "mlflow.db").exists()
