import dataclasses
import json
import shlex
import subprocess
import time

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import fedlm.cli.train  # noqa: F401  (registers the config schema and fedlm's resolvers)
from fedlm import paths
from fedlm.cli.common import CONFIG_DIR
from fedlm.config import AggregatorConfig, OptimizerConfig, TrainConfig
from fedlm.tracking import run_info
from fedlm.tracking.resume import check_same_config


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
    assert run_info.run_name(MULTIRUN) == "adam prompt=To be rounds=2"


def test_single_run_has_no_sweep_tags():
    context = {**MULTIRUN, "hydra.mode": "RUN", "hydra.overrides": "resume=true"}
    tags = run_info.context_tags(context)
    assert run_info.SWEEP_TAG not in tags
    assert not any(k.startswith("override.") for k in tags)
    assert "fedlm.hydra.sweep_dir" not in tags and "fedlm.hydra.job_num" not in tags
    assert run_info.run_name(context) is None


def test_a_single_runs_name_leaves_out_where_it_runs_and_is_recorded_but_the_runtime():
    overrides = (
        "server_optimizer=adam tracking.uri=sqlite:////r/mlflow.db tracking.experiment_name=gru "
        "tracking=mlflow data.cache_dir=/data runtime=remote 'runtime.workers=[a:1]' "
        "hydra.run.dir=/out hydra/launcher=parallel resume=true seed=3"
    )
    context = {**MULTIRUN, "hydra.mode": "RUN", "hydra.overrides": overrides}
    assert run_info.run_name(context) == "adam remote seed=3"  # remote: its times differ


def test_names_show_values_first_and_floats_to_three_digits():
    """Optuna's trials carry values such as 0.0031622776601683794."""
    context = {
        **MULTIRUN,
        "hydra.overrides": "client_optimizer.learning_rate=0.0031622776601683794 "
        "server_optimizer.learning_rate=1.0 +experiment=reddi2021 reddi2021=fedadam seed=1 "
        "training.rounds=1200 eval.temperature=1e-3",
    }
    keys = ["client_optimizer.learning_rate", "server_optimizer.learning_rate", "seed"]
    # a nested run's name fits the runs table's column: the dotted keys' values alone
    assert run_info.run_name(context, keys) == "0.00316 1 seed=1"
    assert run_info.run_name(context, keys[:1]) == "lr=0.00316"
    # a single run's: its choices first, at most 40 characters, the rest elided
    assert run_info.run_name({**context, "hydra.mode": "RUN"}) == (
        "reddi2021 fedadam client.lr=0.00316 …"
    )
    only_server = {
        **context,
        "hydra.overrides": "server_optimizer=adam server_optimizer.learning_rate=0.01 seed=0",
    }
    assert run_info.run_name(only_server) == "adam lr=0.01 seed=0"
    # a group's choice first, its own keys after it, then the others
    reordered = {
        **context,
        "hydra.overrides": "seed=0 server_optimizer.learning_rate=0.01 "
        "data=synthetic server_optimizer=adam",
    }
    assert run_info.run_name(reordered) == "synthetic adam lr=0.01 seed=0"


def test_the_jobs_of_the_shipped_studies_have_names_that_fit_the_runs_table():
    jobs = {
        ("mcmahan2017", "seed"): ("fedavg_e1_b50", "1"),
        ("reddi2021", "seed"): ("fedadagrad", "2"),
        ("training.clients_per_round", "sampler", "seed"): ("10", "round_robin", "1"),
        ("server_optimizer", "seed"): ("adam", "1"),
    }
    names = []
    for keys, values in jobs.items():
        overrides = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        names.append(run_info.run_name({**MULTIRUN, "hydra.overrides": overrides}, keys))
    assert names == [
        "fedavg_e1_b50 seed=1",
        "fedadagrad seed=2",
        "round_robin 10 seed=1",
        "adam seed=1",
    ]


def test_a_long_name_is_cut_between_words():
    assert run_info.fit(["a" * 5, "b" * 5, "c" * 5], 17) == "aaaaa bbbbb ccccc"
    assert run_info.fit(["a" * 5, "b" * 5, "c" * 5], 16) == "aaaaa bbbbb …"
    assert run_info.fit(["a" * 20], 10) == "aaaaaaaaa…"


def test_a_sweep_is_named_by_its_swept_keys_and_start_time():
    started = time.mktime((2026, 12, 2, 7, 10, 0, 0, 0, -1))
    keys = ["server_optimizer", "server_optimizer.learning_rate", "seed"]
    assert run_info.sweep_name(keys, started) == "sweep server_optimizer lr seed 2026-12-02 07:10"
    # the keys in the order the jobs' names show their values: config groups first
    keys = ["training.clients_per_round", "sampler", "seed"]
    assert run_info.sweep_name(keys, started) == (
        "sweep sampler clients_per_round seed 2026-12-02 07:10"
    )
    assert run_info.sweep_name([], started) == "sweep 2026-12-02 07:10"  # a multirun of one job


def test_a_runs_source_and_user_are_mlflows_own_tags():
    tags = run_info.source_tags()
    assert tags["mlflow.source.name"] == "fedlm-train"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]


def test_the_description_holds_the_command_and_every_override():
    overrides = ["server_optimizer=adam", "eval.prompt=To be", "+experiment=reddi2021"]
    assert run_info.description(overrides) == (
        "Reproduce with:\n\n"
        "    uv run fedlm-train server_optimizer=adam 'eval.prompt=To be' +experiment=reddi2021\n\n"
        "Overrides:\n- `server_optimizer=adam`\n- `eval.prompt=To be`\n"
        "- `+experiment=reddi2021`\n"
    )
    assert run_info.description([], multirun=True) == (
        "Reproduce with:\n\n    uv run fedlm-train -m\n\n"
        "Overrides:\nnone (conf/train.yaml's defaults)\n"
    )


def test_the_resume_command_keeps_the_overrides_and_names_the_run():
    overrides = ["seed=1", "resume=true", "'eval.prompt=To be'"[1:-1]]
    assert run_info.resume_command(overrides, "abc123") == (
        "uv run fedlm-train seed=1 'eval.prompt=To be' resume=abc123"
    )


def test_params_leave_out_the_keys_of_choices_not_made():
    cfg = TrainConfig()
    cfg.server_optimizer = OptimizerConfig(name="adam", learning_rate=0.01, beta_1=0.9)
    cfg.aggregator = AggregatorConfig(name="dp_fixed", noise_multiplier=0.1, clip=1.0)
    params = run_info.params(dataclasses.asdict(cfg))
    chosen = {k: v for k, v in params.items() if k.startswith(GROUPS)}
    assert chosen == {
        "client_optimizer.name": "sgd",
        "client_optimizer.learning_rate": "1.0",
        "client_optimizer.momentum": "null",
        "server_optimizer.name": "adam",
        "server_optimizer.learning_rate": "0.01",
        "server_optimizer.beta_1": "0.9",
        "server_optimizer.beta_2": "null",
        "server_optimizer.epsilon": "null",
        "aggregator.name": "dp_fixed",
        "aggregator.noise_multiplier": "0.1",
        "aggregator.clip": "1.0",
        "aggregator.delta": "null",
        "aggregator.measure_norms": "false",  # every aggregator takes it
        "sampler.name": "uniform",
        "data.pipeline": "tutorial",
        "data.pad": "false",
    }
    cfg.data.pipeline, cfg.sampler.name = "paper", "fixed"
    params = run_info.params(dataclasses.asdict(cfg))
    assert {
        k: params.get(k) for k in ("data.pad", "data.loss_on_padding", "sampler.client_ids")
    } == {
        "data.pad": None,
        "data.loss_on_padding": "false",
        "sampler.client_ids": "[]",
    }
    assert {"data.cache_dir", "data.source", "data.source_url"} <= set(params)
    left_out = set(run_info.flatten(dataclasses.asdict(cfg))) - set(params)
    assert left_out == {
        "resume",
        "output_dir",
        *(f"client_optimizer.{k}" for k in ("beta_1", "beta_2", "epsilon")),
        "client_optimizer.initial_preconditioner_value",
        "server_optimizer.momentum",
        "server_optimizer.initial_preconditioner_value",
        *(f"aggregator.{k}" for k in ("initial_clip", "target_quantile", "clip_learning_rate")),
        *(f"aggregator.{k}" for k in ("clipped_count_stddev", "zeroing", "clipping")),
        "data.pad",
        "runtime.workers",  # remote's
    }


GROUPS = (
    "client_optimizer.",
    "server_optimizer.",
    "aggregator.",
    "sampler.",
    "data.pipeline",
    "data.pad",
    "data.loss_on_padding",
)


def test_the_synthetic_data_has_no_file_keys():
    """data=synthetic is TFF's in-memory set: no cache_dir, source or source_url to log."""
    cfg = TrainConfig()
    cfg.data.name, cfg.data.cache_dir, cfg.data.source = "synthetic", "", None
    params = run_info.params(dataclasses.asdict(cfg))
    assert not {"data.cache_dir", "data.source", "data.source_url"} & set(params)
    assert params["data.name"] == "synthetic"


def test_a_remote_run_logs_its_workers_and_not_the_local_ones_threads():
    cfg = TrainConfig()
    cfg.runtime.name, cfg.runtime.workers = "remote", ["node1:8000"]
    runtime = {k: v for k, v in run_info.params(dataclasses.asdict(cfg)).items() if "runtime." in k}
    assert runtime == {
        "runtime.name": "remote",
        "runtime.workers": '["node1:8000"]',
        "runtime.max_concurrent_computation_calls": "-1",
        "runtime.give_up_after_s": "300.0",
    }


@pytest.mark.parametrize("pack", sorted((paths.PROJECT_ROOT / "experiments").glob("*/carry/*")))
def test_the_committed_paper_runs_resume_under_the_params_logged_now(pack):
    """The reddi2021 runs in flight (packed in experiments/reddi2021/carry) resume with the
    params this code logs for their command: every key both have is equal (where the data lies
    on this machine aside), so the resume's config check passes."""
    record = json.loads((pack / "run.json").read_text())
    overrides = shlex.split(record["tags"]["fedlm.hydra.overrides"])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "output_dir=."])
    logged = dict(record["params"])
    now = run_info.params(OmegaConf.to_container(cfg, resolve=True))
    for key in ("data.source", "data.cache_dir"):  # this machine's folders
        logged[key] = now[key]
    check_same_config(logged, now, str(pack))
    assert set(now) - set(logged) == set()  # nothing new to log for them
