import subprocess

from fedlm import paths
from fedlm.tracking import run_info


def test_flatten_gives_dotted_keys_and_override_style_values():
    config = {
        "training": {"rounds": 3, "max_batches_per_client": None},
        "eval": {"centralized": True, "client_ids": ["A", "B"]},
        "sampler": {"client_ids": []},
        "seed": 0,
        "resume": False,
        "output_dir": "/x",
    }
    assert run_info.flatten(config) == {
        "training.rounds": "3",
        "training.max_batches_per_client": "null",
        "eval.centralized": "true",
        "eval.client_ids": '["A", "B"]',
        "sampler.client_ids": "[]",
        "seed": "0",
        "resume": "false",
        "output_dir": "/x",
    }
    assert "resume" not in run_info.params(config)
    assert "output_dir" not in run_info.params(config)


def test_long_values_are_cut_to_the_param_limit():
    value = run_info.param_value("x" * 2000)
    assert len(value) == run_info.MAX_PARAM_LENGTH and value.endswith("...")


def test_git_state_of_the_checkout_and_of_no_repository(tmp_path):
    state = run_info.git_state()
    head = subprocess.run(
        ["git", "-C", str(paths.PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert state[run_info.GIT_COMMIT_TAG] == head
    assert state["fedlm.git.dirty"] in ("true", "false")
    assert run_info.git_state(tmp_path) == {}


MULTIRUN = {
    "hydra.mode": "MULTIRUN",
    "hydra.output_dir": "/w/multirun/x/3",
    "hydra.sweep_dir": "/w/multirun/x",
    "hydra.job_num": "3",
    "hydra.overrides": "server_optimizer=adam 'eval.prompt=To be' training.rounds=2",
    "hydra.choices": "data: synthetic\n",
}


def test_multirun_job_is_tagged_with_its_sweep_and_overrides():
    tags = run_info.context_tags(MULTIRUN)
    assert tags[run_info.SWEEP_TAG] == "/w/multirun/x"
    assert tags["fedlm.sweep.job"] == "3"
    assert tags["override.server_optimizer"] == "adam"
    assert tags["override.eval.prompt"] == "To be"
    assert tags["override.training.rounds"] == "2"
    assert tags["fedlm.hydra.output_dir"] == "/w/multirun/x/3"
    assert "fedlm.hydra.choices" not in tags
    assert (
        run_info.run_name(MULTIRUN) == "server_optimizer=adam eval.prompt=To be training.rounds=2"
    )


def test_single_run_has_no_sweep_tags():
    context = {**MULTIRUN, "hydra.mode": "RUN", "hydra.overrides": "resume=true"}
    tags = run_info.context_tags(context)
    assert run_info.SWEEP_TAG not in tags
    assert not any(k.startswith("override.") for k in tags)
    assert run_info.run_name(context) is None


def test_a_single_runs_name_leaves_out_where_it_runs_and_is_recorded():
    overrides = (
        "server_optimizer=adam tracking.uri=sqlite:////r/mlflow.db tracking.experiment_name=gru "
        "tracking=mlflow data.cache_dir=/data runtime=remote 'runtime.workers=[a:1]' "
        "hydra.run.dir=/out hydra/launcher=parallel resume=true seed=3"
    )
    context = {**MULTIRUN, "hydra.mode": "RUN", "hydra.overrides": overrides}
    assert run_info.run_name(context) == "server_optimizer=adam seed=3"
