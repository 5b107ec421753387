"""Real short runs of the round loop with MLflow tracking: the shipped config, composed and shrunk.

The tiny model on TFF's synthetic Shakespeare (3 clients) for 3 rounds, in a temporary store
shared by this module's runs. One uninterrupted run (made once) is the reference that crashed and
resumed runs must reproduce.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from dp_accounting import (
    GaussianDpEvent,
    NeighboringRelation,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
)
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant
from shrunk import SHRUNK, compose_train

from fedlm.cli.carry import main as carry_main
from fedlm.cli.train import run_context  # noqa: F401 (registers the schema and resolvers)
from fedlm.errors import ConfigError
from fedlm.experiment import run
from fedlm.federated.samplers import build_sampler
from fedlm.report.histories import merge_runs
from fedlm.tracking import build_tracker, carry
from fedlm.tracking.runs import RunRecord

ROUNDS = 3
SMALL = [
    *SHRUNK,
    "model.pretrained=none",
    f"training.rounds={ROUNDS}",
    "training.max_batches_per_client=2",
    "eval.max_batches=2",
    "eval.generate_length=20",
    "tracking.experiment_name=tests",
    "tracking.checkpoint_every=1",
    "tracking.keep_checkpoints=2",
]
TIMING = (
    "round/seconds",
    "round/examples_per_second",
    "round/tokens_per_second",
    "eval/seconds",
    "summary/running_minutes",
)


def small_config(output_dir: Path, *overrides: str):
    return compose_train(*SMALL, f"output_dir={output_dir}", *overrides, shrunk=False)


class Interrupt(Exception):
    """Stands in for a crash in the middle of a run."""


def crash_after_logging_round(round_num: int):
    """A ``say`` that raises on the progress line of ``round_num``: after its metrics are logged,
    before its checkpoint is written (the loop says the line in between)."""

    def say(line: str) -> None:
        if line.startswith(f"round {round_num}/"):
            raise Interrupt(line)

    return say


def resume(cfg) -> list[str]:
    """Run ``cfg`` again with resume=true, with a fresh tracker; the lines it said."""
    lines = []
    resumed_cfg = dataclasses.replace(cfg, resume=True)
    run(resumed_cfg, build_tracker(resumed_cfg, {}), say=lines.append)
    return lines


def metric_table(client, run_id: str) -> dict[str, dict[int, float]]:
    """key -> {step: value}, failing on any step logged twice."""
    table = {}
    for key in client.get_run(run_id).data.metrics:
        history = client.get_metric_history(run_id, key)
        steps = [m.step for m in history]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step: {steps}"
        table[key] = {m.step: m.value for m in history}
    return table


def assert_same_metrics(resumed: dict, reference: dict) -> None:
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert sorted(resumed[key]) == sorted(reference[key]), key  # no step missing
        if key in TIMING:
            continue
        for step, value in reference[key].items():
            assert resumed[key][step] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, step)


def artifacts(client, run_id, path=None):
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return sorted(found)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, empty_store):
    folder = tmp_path_factory.mktemp("store")
    shutil.copy(empty_store, folder / "mlflow.db")
    return f"sqlite:///{folder}/mlflow.db"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, store_uri):
    """One uninterrupted run: its tracker and result."""
    cfg = small_config(tmp_path_factory.mktemp("reference"), f"tracking.uri={store_uri}")
    with pytest.MonkeyPatch.context() as patch:  # never the real results dir
        patch.setenv("FEDLM_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
        tracker = build_tracker(cfg, {"hydra.mode": "RUN", "hydra.job_num": "0"})
        result = run(cfg, tracker, say=lambda line: None)
    return tracker, result, cfg


def test_a_run_records_metrics_every_round_artifacts_and_a_reloadable_model(reference):
    tracker, result, cfg = reference

    client = tracker.client
    run_ = client.get_run(tracker.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.params["training.rounds"] == str(ROUNDS)
    assert run_.data.params["data.name"] == "synthetic"
    assert run_.data.tags["fedlm.data.pipeline"] == "tutorial"
    # set at the run's start (fedlm.experiment.provenance); synthetic data has no build stamp
    assert run_.data.tags["fedlm.model.vocab_size"] == "86"
    parameters = sum(w.size for w in result.final_weights)
    assert run_.data.tags["fedlm.model.parameters"] == str(parameters)
    assert "fedlm.data.parser_version" not in run_.data.tags
    table = metric_table(client, tracker.run_id)
    for key in ("eval/loss", "eval/accuracy", "eval/perplexity", "eval/bits_per_char"):
        assert sorted(table[key]) == [0, 1, 2, 3], key
    for key in ("train/loss", "train/accuracy", "clients/sampled", "clients/skipped", *TIMING[:2]):
        assert sorted(table[key]) == [1, 2, 3], key
    assert table["clients/sampled"] == {1: 2.0, 2: 2.0, 3: 2.0}
    assert artifacts(client, tracker.run_id) == [
        "config.yaml",
        "generated_text/round_0000.txt",
        f"generated_text/round_{ROUNDS:04d}.txt",
        "plots/accuracy.png",
        "plots/loss.png",
    ]
    assert tracker.checkpoints.rounds() == [2, 3]

    from fedlm.federated.task import Task, build_pipeline

    # The model's page shows the final round's metrics, not round 0's.
    logged = {m.key: m for m in client.get_logged_model(run_.data.tags["fedlm.model_id"]).metrics}
    assert logged["eval/accuracy"].step == ROUNDS
    assert logged["eval/accuracy"].value == table["eval/accuracy"][ROUNDS]
    model = mlflow.tensorflow.load_model(run_.data.tags["fedlm.model_uri"])
    task = Task(build_pipeline(cfg.data, cfg.training), cfg.model)
    expected = task.keras_model()
    expected.set_weights(result.final_weights)
    ids = np.random.default_rng(1).integers(0, task.vocab_size, size=(2, 17))
    np.testing.assert_allclose(model(ids).numpy(), expected(ids).numpy(), rtol=1e-5, atol=1e-6)


def test_resuming_a_finished_run_says_so_once_and_changes_nothing(reference, capfd):
    tracker, _, cfg = reference
    lines = resume(cfg)

    warnings = capfd.readouterr().err.splitlines()
    assert (
        f"fedlm: warning: MLflow run {tracker.run_id} finished all its rounds: nothing to "
        "resume" in warnings
    )
    assert [line for line in lines if "resum" in line] == []
    assert tracker.client.get_run(tracker.run_id).info.status == "FINISHED"


def test_a_crash_between_logging_and_checkpointing_resumes_to_the_uninterrupted_metrics(
    tmp_path, reference, store_uri
):
    # No model logged: not what this test is about, and 5 s.
    cfg = small_config(
        tmp_path / "crashed", f"tracking.uri={store_uri}", "tracking.log_model=false"
    )
    crashed = build_tracker(cfg, {})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_after_logging_round(2))
    client = crashed.client
    assert client.get_run(crashed.run_id).info.status == "FAILED"
    assert crashed.checkpoints.rounds() == [1]  # round 2 logged, never checkpointed
    assert sorted(metric_table(client, crashed.run_id)["train/loss"]) == [1, 2]

    resumed_cfg = dataclasses.replace(cfg, resume=True)
    resumed = build_tracker(resumed_cfg, {})
    run(resumed_cfg, resumed, say=lambda line: None)

    assert resumed.run_id == crashed.run_id
    assert client.get_run(resumed.run_id).info.status == "FINISHED"
    expected = metric_table(client, reference[0].run_id)
    assert_same_metrics(metric_table(client, resumed.run_id), expected)


@pytest.mark.slow  # two more processes to build (looped, unrolled): the default suite has each
# part (test_unroll: the same numbers; the crash above: resuming to the uninterrupted metrics)
def test_a_run_started_looped_resumes_unrolled_to_the_uninterrupted_metrics(
    tmp_path, reference, store_uri
):
    """model.unroll changes speed, not results: a run in progress resumes across the change."""
    cfg = small_config(
        tmp_path / "looped",
        f"tracking.uri={store_uri}",
        "tracking.log_model=false",
        "model.unroll=false",
    )
    crashed = build_tracker(cfg, {})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_after_logging_round(2))
    resumed_cfg = dataclasses.replace(
        cfg, resume=True, model=dataclasses.replace(cfg.model, unroll=True)
    )
    resumed = build_tracker(resumed_cfg, {})
    run(resumed_cfg, resumed, say=lambda line: None)
    client = crashed.client
    assert resumed.run_id == crashed.run_id
    assert client.get_run(resumed.run_id).info.status == "FINISHED"
    assert (
        client.get_run(resumed.run_id).data.params["model.unroll"] == "false"
    )  # as logged at the start
    expected = metric_table(client, reference[0].run_id)
    assert_same_metrics(metric_table(client, resumed.run_id), expected)


@pytest.mark.slow  # two runs in two stores and a resume from the pack: ~100 s loaded
def test_a_run_carried_to_a_new_machine_resumes_there_to_the_uninterrupted_metrics(
    tmp_path, reference, empty_store, capsys
):
    """A crashed run is packed (fedlm-carry), its machine removed whole (store, checkpoints,
    output folder), and resume=<pack> on a new machine (an empty store, a new folder) finishes it
    as the uninterrupted run: the same metrics, params, tags and start time, a new id that names
    the one it continues. The same resume again makes no second copy; the report counts one run."""
    old, new = tmp_path / "old_machine", tmp_path / "new_machine"
    for machine in (old, new):
        machine.mkdir()
        shutil.copy(empty_store, machine / "mlflow.db")
    cfg = small_config(
        old / "run", f"tracking.uri=sqlite:///{old}/mlflow.db", "tracking.log_model=false"
    )
    crashed = build_tracker(cfg, {"hydra.overrides": ["model=tiny", "seed=0"]})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_after_logging_round(2))
    old_run = crashed.client.get_run(crashed.run_id)
    old_metrics = metric_table(crashed.client, crashed.run_id)
    packs = ["--to", str(tmp_path / "packs"), "--tracking-uri", cfg.tracking.uri]
    carry_main(["--unfinished-of", "tests", *packs])  # the one unfinished run of the store
    pack = tmp_path / "packs" / crashed.run_id
    printed = capsys.readouterr().out
    assert f"packed run {crashed.run_id} at round 1 into {pack}" in printed
    assert f"\n  uv run fedlm-train model=tiny seed=0 resume={pack}\n" in printed
    # on the machine it was packed on, resume=<pack> goes on with the run itself
    assert carry.still_here(crashed.client, carry.read_pack(pack, pack)) == crashed.run_id
    shutil.rmtree(old)

    new_uri = f"sqlite:///{new}/mlflow.db"
    carried_cfg = small_config(
        new / "run", f"tracking.uri={new_uri}", "tracking.log_model=false", f"resume={pack}"
    )
    carried = build_tracker(carried_cfg, {})
    run(carried_cfg, carried, say=lambda line: None)

    client = carried.client
    new_run = client.get_run(carried.run_id)
    assert carried.run_id != crashed.run_id
    assert new_run.info.status == "FINISHED"
    assert new_run.info.start_time == old_run.info.start_time
    assert new_run.data.tags["fedlm.continues"] == crashed.run_id
    assert new_run.data.tags["fedlm.carried_from"] == f"{crashed.run_id}@1"
    assert new_run.data.tags["fedlm.checkpoint_dir"] == str(new / "run" / "checkpoints")
    assert new_run.data.params == old_run.data.params
    assert new_run.info.run_name == old_run.info.run_name
    metrics = metric_table(client, carried.run_id)
    assert_same_metrics(metrics, metric_table(reference[0].client, reference[0].run_id))
    # the points logged before the crash are the ones carried, bit for bit
    assert all(
        metrics[key][step] == value
        for key in old_metrics
        for step, value in old_metrics[key].items()
    )

    # the same pack again: the run made from it (finished), not a second copy
    again_cfg = dataclasses.replace(carried_cfg, output_dir=str(new / "again"))
    again = build_tracker(again_cfg, {})
    run(again_cfg, again, say=lambda line: None)
    assert again.run_id == carried.run_id
    assert [r.info.run_id for r in client.search_runs([new_run.info.experiment_id])] == [
        carried.run_id
    ]
    # a report of the committed (old) history and of the new store counts the run once
    committed = RunRecord(crashed.run_id, "r", "KILLED", history={"eval/accuracy": [(1, 0.1, 0.0)]})
    carried_record = RunRecord(
        carried.run_id,
        "r",
        "FINISHED",
        tags=dict(new_run.data.tags),
        history={"eval/accuracy": [(3, 0.2, 0.0)]},
    )
    assert merge_runs([committed], [carried_record]) == [carried_record]


def test_a_pack_folder_that_is_not_complete_is_refused_in_one_line(tmp_path, empty_store):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "run.json").write_text('{"format": 1, "run_id": "x", "round": 4}')
    cfg = small_config(tmp_path / "run", f"resume={pack}")
    missing = r"\(missing experiment, params, tags, start_time\)"
    with pytest.raises(
        ConfigError, match=rf"a complete pack folder written by fedlm-carry {missing}"
    ):
        build_tracker(cfg, {}).claim()
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing written


def train_command(run_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fedlm.cli.train",
        *SMALL,
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


def run_train(run_dir: Path, log: Path, *overrides, kill_after_round=None):
    """Run fedlm-train in its own process group with its output in ``log`` (TFF's worker may
    hold a pipe open); SIGKILL the whole group once it reports ``kill_after_round``."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            train_command(run_dir, *overrides),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 240
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if kill_after_round is not None and f"round {kill_after_round}/" in log.read_text():
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode, log.read_text()


@pytest.mark.slow  # a real fedlm-train subprocess SIGKILLed, then resumed: ~5 min loaded
def test_sigkill_after_a_round_then_resume_reproduces_the_uninterrupted_run(
    tmp_path, reference, store_uri
):
    """fedlm-train in a subprocess, SIGKILLed once it reports round 2 (before or after writing
    that round's checkpoint), resumed with resume=true, equals the uninterrupted run. The resume
    runs in this process (the killed process is the real crash; a second subprocess would only
    pay TensorFlow's import again)."""
    killed = tmp_path / "killed"
    store = f"tracking.uri={store_uri}"
    code, output = run_train(killed, tmp_path / "killed.log", store, kill_after_round=2)
    assert code == -signal.SIGKILL, output
    lines = resume(small_config(killed, store))
    assert any(line.startswith("resuming after round") for line in lines), lines

    client = reference[0].client
    run_id = json.loads((killed / "checkpoints" / "run.json").read_text())["run_id"]
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["fedlm.resumes"] == "1"
    assert resumed.data.tags["fedlm.resumed_from_round"] in ("1", "2")
    expected = metric_table(client, reference[0].run_id)
    assert_same_metrics(metric_table(client, run_id), expected)


def fixed_size_epsilon(rounds):
    """2 of TFF's 3 synthetic clients a round at noise 0.5, delta 1/3^1.1: capped at the
    unsampled Gaussian's RDP, which is below dp_accounting's bound for 2 of 3 (issue 23)."""
    accountant = RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
    accountant.compose(SelfComposedDpEvent(GaussianDpEvent(0.5 / 2), rounds))
    return accountant.get_epsilon(3**-1.1)


def poisson_epsilon(rounds):
    """Each of the 3 clients with probability 2/3 at noise 0.5, add-or-remove, delta 1/3^1.1."""
    accountant = PLDAccountant(NeighboringRelation.ADD_OR_REMOVE_ONE)
    sampled = PoissonSampledDpEvent(2 / 3, GaussianDpEvent(0.5))
    accountant.compose(SelfComposedDpEvent(sampled, rounds))
    return accountant.get_epsilon(3**-1.1)


@pytest.mark.slow  # a crash and a resume of a DP run: 25 s; the accounting itself is tested fast
@pytest.mark.parametrize(
    "sampler, epsilon", [("uniform", fixed_size_epsilon), ("poisson", poisson_epsilon)]
)
def test_a_resumed_dp_run_logs_each_rounds_epsilon_once_and_as_if_uninterrupted(
    tmp_path, store_uri, sampler, epsilon
):
    """DP noise is drawn unseeded by TensorFlow Privacy, so the model differs; the accounting
    and the clients drawn must not: epsilon after round r is dp_accounting's for r rounds, and
    the cohorts are the sampler's uninterrupted draws, whatever crashed."""
    cfg = small_config(
        tmp_path / "dp",
        f"tracking.uri={store_uri}",
        "tracking.log_model=false",
        "aggregator=dp_adaptive",
        "aggregator.noise_multiplier=0.5",
        f"sampler={sampler}",
    )
    crashed = build_tracker(cfg, {})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_after_logging_round(2))
    assert crashed.checkpoints.rounds() == [1]  # round 2 logged, never checkpointed
    resumed_cfg = dataclasses.replace(cfg, resume=True)
    run(resumed_cfg, build_tracker(resumed_cfg, {}), say=lambda line: None)

    client = crashed.client
    table = metric_table(client, crashed.run_id)  # fails on a step logged twice
    assert table["privacy/epsilon"] == {r: pytest.approx(epsilon(r), rel=1e-9) for r in (1, 2, 3)}
    uninterrupted = build_sampler(sampler, {"A": 1, "B": 1, "C": 1}, 2, cfg.seed)
    sizes = {r: float(len(uninterrupted.sample())) for r in (1, 2, 3)}
    assert table["clients/sampled"] == sizes
    tags = client.get_run(crashed.run_id).data.tags
    assert float(tags["fedlm.privacy.epsilon"]) == pytest.approx(epsilon(3), rel=1e-5)


# eval/num_tokens >= 1 holds at every evaluation, so with eval.every=2 a run of 3 rounds stops at
# round 2, its first evaluated round: a target the tiny model reaches for certain.
STOP_AT_ROUND_2 = (
    "eval.every=2",
    "training.stop_at.metric=eval/num_tokens",
    "training.stop_at.value=1",
    "tracking.log_model=false",  # not what these tests are about, and 5 s
)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, store_uri):
    """One uninterrupted run that stops at its target in round 2 of 3."""
    cfg = small_config(
        tmp_path_factory.mktemp("stopped"), f"tracking.uri={store_uri}", *STOP_AT_ROUND_2
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDLM_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
        tracker = build_tracker(cfg, {})
        run(cfg, tracker, say=lambda line: None)
    return tracker, cfg


def test_a_run_that_reached_its_target_is_finished_and_resuming_it_does_nothing(stopped):
    tracker, cfg = stopped
    client = tracker.client
    run_ = client.get_run(tracker.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.tags["fedlm.stopped_at_round"] == "2"
    assert run_.data.params["training.stop_at.metric"] == "eval/num_tokens"
    table = metric_table(client, tracker.run_id)
    assert table["stop/round"] == {2: 2.0}
    assert sorted(table["train/loss"]) == [1, 2]
    assert sorted(table["eval/loss"]) == [0, 2]
    assert tracker.checkpoints.rounds() == [1, 2]

    lines = resume(cfg)
    assert "eval/num_tokens >= 1 was reached at round 2: no round to train" in lines
    assert not any(line.startswith("round ") for line in lines)
    assert metric_table(client, tracker.run_id) == table
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert tracker.checkpoints.rounds() == [1, 2]


@pytest.mark.slow  # ~12 s; the stopped run, and its resume doing nothing, stay in the default suite
def test_a_run_resumed_before_its_target_goes_on_to_stop_where_it_would_have(
    tmp_path, stopped, store_uri
):
    """Crashed after logging round 2 (where it reaches the target), before checkpointing it:
    resumed from round 1, it trains round 2 again and stops there, as the uninterrupted run."""
    cfg = small_config(tmp_path / "crashed", f"tracking.uri={store_uri}", *STOP_AT_ROUND_2)
    crashed = build_tracker(cfg, {})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_after_logging_round(2))
    assert crashed.checkpoints.rounds() == [1]
    assert "fedlm.stopped_at_round" not in crashed.client.get_run(crashed.run_id).data.tags

    lines = resume(cfg)
    assert "resuming after round 1 of 3" in lines
    assert "eval/num_tokens >= 1 reached at round 2: training stops" in lines
    client = crashed.client
    run_ = client.get_run(crashed.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.tags["fedlm.stopped_at_round"] == "2"
    expected = metric_table(client, stopped[0].run_id)
    assert_same_metrics(metric_table(client, crashed.run_id), expected)


@pytest.mark.slow  # ~11 s; as above
def test_a_run_that_crashed_after_its_target_checkpoint_resumes_to_its_end_without_training(
    tmp_path, stopped, store_uri
):
    def crash_when_stopping(line: str) -> None:
        if "training stops" in line:  # after the stopping round's checkpoint, before the end
            raise Interrupt(line)

    cfg = small_config(tmp_path / "crashed", f"tracking.uri={store_uri}", *STOP_AT_ROUND_2)
    crashed = build_tracker(cfg, {})
    with pytest.raises(Interrupt):
        run(cfg, crashed, say=crash_when_stopping)
    assert crashed.checkpoints.rounds() == [1, 2]

    lines = resume(cfg)
    assert "eval/num_tokens >= 1 was reached at round 2: no round to train" in lines
    assert not any(line.startswith("round ") for line in lines)
    client = crashed.client
    run_ = client.get_run(crashed.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.tags["fedlm.stopped_at_round"] == "2"
    expected = metric_table(client, stopped[0].run_id)
    assert_same_metrics(metric_table(client, crashed.run_id), expected)


def test_fedlm_carry_takes_run_ids_or_an_experiment_and_refuses_both_or_neither(capsys):
    for argv in ([], ["abc", "--unfinished-of", "tests"]):
        with pytest.raises(SystemExit) as refused:
            carry_main([*argv, "--to", "packs"])
        assert refused.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("fedlm-carry: error: RUN_ID / --unfinished-of=")
        assert "either run ids or --unfinished-of EXPERIMENT" in err
        assert "\n" not in err
