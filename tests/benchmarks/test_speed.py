"""The speed benchmark runs end to end (two rounds, the tiny model): it compares like with like."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SPEED = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"
TINY = [
    "data=synthetic",
    "model=tiny",
    "training.clients_per_round=2",
    "training.seq_len=10",
    "training.batch_size=2",
    "training.max_batches_per_client=3",
    "eval.batch_size=4",
]


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed", SPEED)
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed"] = module  # its dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("speed", None)


@pytest.mark.slow  # runs the benchmark end to end: 15-50 s each
@pytest.mark.parametrize("local_workers", [1, 2])
def test_two_rounds_on_the_tiny_model_match_plain_tensorflow(
    speed, tmp_path, capsys, local_workers
):
    out = tmp_path / "speed.json"
    argv = ["--settings", "custom", "--rounds", "2", "--json", str(out), "--"]
    speed.main([*argv, *TINY, f"runtime.local_workers={local_workers}"])

    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| setting | fedlm s/round | plain TF s/round | ratio")
    assert "| custom |" in table
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1
    (report,) = data["settings"]
    assert report["runtime"]["local_workers"] == local_workers
    fedlm, plain = report["fedlm"], report["plain"]
    assert len(fedlm["round_seconds"]) == len(plain["round_seconds"]) == 2
    assert all(tokens > 0 for tokens in fedlm["round_tokens"])
    # The same clients, batches and arithmetic: the same model after two rounds.
    assert report["max_weight_difference"] < 1e-5
    assert report["round_ratio"] == pytest.approx(
        fedlm["round_seconds"][1] / plain["round_seconds"][1]
    )
    evaluation = report["evaluation"]
    assert evaluation["accuracy_fedlm"] == pytest.approx(evaluation["accuracy_keras"], abs=1e-6)
    assert evaluation["sequences"] > 0 and evaluation["fedlm_seconds"] > 0
    assert fedlm["peak_rss_mib"] >= fedlm["peak_driver_rss_mib"] > 0
