"""``fedlm-train -m``: a 2 x 2 sweep on the tiny model and synthetic data logs four runs, each with
its swept values as tags, nested under the sweep's parent run; and the study configs compose."""

import sys

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from shrunk import SHRUNK

import fedlm.cli.train as train_cli
from fedlm.checks import validate
from fedlm.cli.common import CONFIG_DIR
from fedlm.config import TrainConfig
from fedlm.report import group_runs
from fedlm.tracking.runs import load_runs

TINY = [
    *SHRUNK,
    "training.rounds=1",
    "training.max_batches_per_client=1",
    "eval.max_batches=1",
    "eval.generate_length=0",
    "tracking.log_model=false",
    "tracking.experiment_name=multirun",
]


def multirun(monkeypatch, tmp_path, *overrides):
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    argv = ["fedlm-train", "-m", *TINY, *overrides]
    monkeypatch.setattr(sys, "argv", [*argv, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    train_cli.main()
    uri = f"sqlite:///{tmp_path / 'results'}/mlflow.db"
    return uri, mlflow.MlflowClient(tracking_uri=uri)


def check_sweep(uri, client, tmp_path, optimizers=("sgd", "adam"), seeds=("0", "1")):
    experiment = client.get_experiment_by_name("multirun")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("fedlm.sweep.parent") == "true"]
    jobs = [r for r in runs if r is not parent]
    swept = sorted(
        (r.data.tags["override.server_optimizer"], r.data.tags["override.seed"]) for r in jobs
    )
    assert swept == sorted((o, s) for o in optimizers for s in seeds)
    sweep_dir = str((tmp_path / "sweep").resolve())
    for run in jobs:
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["fedlm.sweep"] == sweep_dir
        assert params["server_optimizer.name"] == tags["override.server_optimizer"]
        assert params["seed"] == tags["override.seed"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/accuracy")]
        assert sorted(steps) == [0, 1]
    assert sorted(r.data.tags["fedlm.sweep.job"] for r in jobs) == [
        str(i) for i in range(len(jobs))
    ]
    names = {
        (r.data.tags["override.server_optimizer"], r.data.tags["override.seed"]): r for r in jobs
    }
    for (optimizer, seed), run in names.items():
        assert run.info.run_name == f"{optimizer} seed={seed}"
        assert run.data.tags["mlflow.note.content"].startswith(
            "Reproduce with:\n\n    uv run fedlm-train data=synthetic model=tiny "
        )
        assert (
            f" server_optimizer={optimizer} seed={seed}\n\n" in run.data.tags["mlflow.note.content"]
        )
        # adam's beta_1 (null: TFF's default) is a param of adam's runs only
        assert ("server_optimizer.beta_1" in run.data.params) == (optimizer == "adam")
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert "train.log" in artifacts
        summary = sorted(k for k in run.data.metrics if k.startswith("summary/"))
        assert summary == [
            "summary/best_eval_accuracy",
            "summary/best_round",
            "summary/final_eval_accuracy",
            "summary/rounds",
            "summary/running_minutes",
        ]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("sweep server_optimizer seed ")
    assert parent.data.params == {"server_optimizer": "sgd,adam", "seed": "0,1"}
    finals = {r.info.run_id: r.data.metrics["summary/final_eval_accuracy"] for r in jobs}
    best = parent.data.tags["fedlm.sweep.best_run"]
    assert finals[best] == max(finals.values())  # the first job of those tied
    assert parent.data.metrics["summary/final_eval_accuracy"] == finals[best]
    report = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/report.md")
    for run in jobs:
        final = run.data.metrics["summary/final_eval_accuracy"]
        assert f"| {run.info.run_name} | FINISHED | {final:.4f} |" in report
    groups = group_runs(load_runs(uri, "multirun")[0])
    assert [(g.label, len(g.runs)) for g in groups] == [
        (f"server_optimizer={o}", len(seeds)) for o in optimizers
    ]


@pytest.mark.slow  # four real jobs through Hydra's multirun: ~100 s loaded
def test_a_2x2_multirun_logs_four_runs_with_their_swept_values(monkeypatch, tmp_path, capfd):
    uri, client = multirun(monkeypatch, tmp_path, "server_optimizer=sgd,adam", "seed=0,1")
    check_sweep(uri, client, tmp_path)

    # Each job's console lines start with its swept values; its train.log has them unprefixed.
    out = capfd.readouterr().out.splitlines()
    for job, (optimizer, seed) in enumerate([("sgd", 0), ("sgd", 1), ("adam", 0), ("adam", 1)]):
        prefix = f"[server_optimizer={optimizer} seed={seed}] "
        rounds = [line for line in out if line.startswith(f"{prefix}round 1/1 | train: loss=")]
        assert len(rounds) == 1, (prefix, out)
        log = (tmp_path / "sweep" / str(job) / "train.log").read_text().splitlines()
        assert rounds[0][len(prefix) :] in log
        assert log[0] == f"output folder: {tmp_path / 'sweep' / str(job)} (checkpoints, train.log)"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["hydra/launcher=slurm"],
            "fedlm-train: error: hydra/launcher=slurm cannot start: no srun on PATH ",
        ),
        (
            ["hydra/sweeper=optuna_lr", "hydra.sweeper.storage=sqlite:///{tmp}/no/optuna.db"],
            "fedlm-train: error: hydra.sweeper.storage='sqlite:///{tmp}/no/optuna.db' (study "
            "'fedlm_learning_rates') cannot be used (OperationalError: ",
        ),
    ],
)
def test_a_launcher_that_cannot_start_is_one_line_and_exit_status_2(
    monkeypatch, tmp_path, capfd, overrides, message
):
    """Without the check, submitit raises from inside Hydra (a traceback, exit status 1)."""
    monkeypatch.setenv("PATH", str(tmp_path / "no_slurm_here"))
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    with pytest.raises(SystemExit) as exit_info:
        multirun(monkeypatch, tmp_path, *overrides, "seed=0,1")
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message.format(tmp=tmp_path)), err
    assert not (tmp_path / "results" / "mlflow.db").exists()  # no parent run, no store


@pytest.mark.slow  # two Hydra jobs in joblib processes, each importing TFF: 1.5 min on 2 cores
def test_parallel_jobs_through_joblib_each_get_their_own_tff_worker(monkeypatch, tmp_path):
    # 4 jobs on 2 loky processes (about 30 s): each process runs two jobs, one after the other,
    # so a reused process must start its second job's TFF worker and context clean.
    uri, client = multirun(
        monkeypatch, tmp_path, "hydra/launcher=parallel", "server_optimizer=sgd,adam", "seed=0,1"
    )
    check_sweep(uri, client, tmp_path)


def compose_train(*overrides) -> TrainConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "output_dir=."], return_hydra_config=True)
    sweep = dict(cfg.hydra.sweeper.params or {})
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_object(cfg), sweep


@pytest.mark.parametrize(
    ("method", "server"),
    [
        ("fedavg", ("sgd", 1.0, None, None)),
        ("fedavgm", ("sgd", 10**-0.5, 0.9, None)),
        ("fedadagrad", ("adagrad", 10**-0.5, None, 0.1)),
        ("fedadam", ("adam", 0.01, None, 0.001)),
        ("fedyogi", ("yogi", 0.01, None, 0.001)),
    ],
)
def test_reddi2021_methods_have_the_papers_shakespeare_learning_rates(method, server):
    cfg, _ = compose_train("+experiment=reddi2021", f"reddi2021={method}")
    opt = cfg.server_optimizer
    assert (opt.name, opt.learning_rate, opt.momentum, opt.epsilon) == pytest.approx(server)
    assert cfg.client_optimizer.learning_rate == 1.0
    assert (cfg.data.pipeline, cfg.model.name, cfg.algorithm.client_weighting) == (
        "paper",
        "lstm_2x256",
        "num_tokens",
    )
    t = cfg.training
    assert (t.clients_per_round, t.local_epochs, t.batch_size, t.seq_len, t.rounds) == (
        10,
        1,
        4,
        80,
        1200,
    )


@pytest.mark.parametrize(
    ("setting", "aggregator", "noise", "sampler"),
    [
        ("nonprivate", "mean", None, "uniform"),
        ("clip", "dp_adaptive", 0.0, "uniform"),
        ("noise0.5", "dp_adaptive", 0.5, "uniform"),
        ("noise1.0", "dp_adaptive", 1.0, "uniform"),
        ("noise1.0_poisson", "dp_adaptive", 1.0, "poisson"),
    ],
)
def test_dp_settings_are_the_baselines_and_dp_runs_from_one_start(
    setting, aggregator, noise, sampler
):
    cfg, _ = compose_train("+experiment=dp", f"dp={setting}")
    validate(cfg)
    agg = cfg.aggregator
    assert (agg.name, agg.noise_multiplier, cfg.sampler.name) == (aggregator, noise, sampler)
    assert agg.measure_norms  # every setting logs its update norms
    # one start for all: the non-private Dickens model, 100 clients a round, equal weights
    assert cfg.model.pretrained.endswith("/pretrained/lstm_2x256_paper.h5")
    assert (cfg.training.clients_per_round, cfg.algorithm.client_weighting) == (100, "uniform")
    assert (cfg.server_optimizer.name, cfg.server_optimizer.learning_rate) == ("sgd", 1.0)
    if aggregator == "dp_adaptive":  # one initial clip for every DP setting
        clip_only, _ = compose_train("+experiment=dp", "dp=clip")
        assert agg.initial_clip == clip_only.aggregator.initial_clip


@pytest.mark.parametrize(
    ("study", "quick_jobs", "full_jobs"),
    [("reddi2021", 10, 15), ("mcmahan2017", 8, 15), ("sampling", 12, 48), ("dp", 5, 15)],
)
def test_each_study_sweeps_its_settings_at_both_scales(study, quick_jobs, full_jobs):
    for scale, jobs in (("quick", quick_jobs), ("full", full_jobs)):
        cfg, sweep = compose_train(f"+experiment={study}", f"experiment_scale={scale}")
        assert cfg.experiment_scale == scale
        assert cfg.tracking.experiment_name == study
        count = 1
        for values in sweep.values():
            count *= len(str(values).split(","))
        assert count == jobs, (scale, sweep)


def test_fedsgd_is_one_step_on_each_clients_whole_data():
    cfg, _ = compose_train(
        "+experiment=mcmahan2017", "experiment_scale=quick", "mcmahan2017=fedsgd"
    )
    t = cfg.training
    assert (t.local_epochs, t.max_batches_per_client, t.batch_size) == (1, 1, 100000)
    assert (cfg.client_optimizer.learning_rate, cfg.server_optimizer.learning_rate) == (1.47, 1.0)
