"""The speed benchmark's figures, on hand-made round times (no timing), and the benchmark end to
end (two rounds, the tiny model): it compares like with like."""

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
from shrunk import SHRUNK

SPEED = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"
TINY = [
    *SHRUNK,
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


# Four rounds of each loop: per-round ratios after the first 0.5, 1.2 and 0.9. Their median, 0.9,
# is neither the ratio of the medians (10 / 10) nor of the sums (31 / 40).
FEDLM, PLAIN = [20.0, 10.0, 12.0, 9.0], [30.0, 20.0, 10.0, 10.0]


def test_the_ratio_is_the_median_of_the_per_round_ratios_from_round_2(speed):
    assert speed.round_figures(FEDLM, PLAIN) == {
        "rounds_compared": [2, 4],
        "round_ratios": [0.5, 1.2, 0.9],
        "round_ratio": 0.9,
        "fedlm_median_round_seconds": 10.0,
        "plain_median_round_seconds": 10.0,
        "fedlm_first_round_seconds": 20.0,
        "plain_first_round_seconds": 30.0,
    }
    one = speed.round_figures([20.0], [30.0])
    assert (one["round_ratio"], one["rounds_compared"], one["plain_first_round_seconds"]) == (
        None,
        None,
        30.0,
    )
    with pytest.raises(ValueError, match="got 2 and 1"):
        speed.round_figures([1.0, 2.0], [1.0])


def hand_made(setting="custom", overrides=("model=tiny",)):
    """A setting's report as the benchmark writes it, without the stored figures (as in a JSON
    written before they were stored)."""
    return {
        "setting": setting,
        "overrides": list(overrides),
        "rounds": 4,
        "fedlm": {
            "round_seconds": FEDLM,
            "median_round_seconds": 10.5,  # an older file's own median: not shown
            "first_round_seconds": 20.0,
            "start_to_first_round_seconds": 60.0,
            "characters_per_second": 1234.4,
            "peak_rss_mib": 2048.2,
            "final_evaluation_seconds": 25.0,
        },
        "plain": {"round_seconds": PLAIN, "median_round_seconds": 14.0},
        "round_ratio": 0.775,  # an older file's ratio of sums: not shown
        "evaluation": {"fedlm_seconds": 20.0, "keras_seconds": 16.0},
    }


def test_the_table_of_a_json_file_shows_the_figures_of_its_round_times(speed, tmp_path, capsys):
    path = tmp_path / "speed.json"
    path.write_text(json.dumps({"machine": {}, "settings": [hand_made()]}))
    speed.main(["--table", str(path)])
    assert capsys.readouterr().out.splitlines() == [
        "| setting | rounds | fedlm s/round | plain TF s/round | ratio "
        "| first round fedlm / plain s | chars/s fedlm | start to first round s "
        "| eval fedlm / Keras s | peak RSS MiB | overrides |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        "| custom | 4 | 10.00 | 10.00 | 0.90 | 20.0 / 30.0 | 1,234 | 60 | 20.00 / 16.00 | 2,048 "
        "| `model=tiny` |",
        "",
        "Rounds compared: 2–4. Ratio: the median of the per-round ratios, fedlm's round i over "
        "plain TensorFlow's round i; s/round: the median of each side over the same rounds (so "
        "the ratio need not equal the ratio of the medians); first round: round 1 of each "
        "(tracing and compilation).",
    ]


def test_the_projected_full_scale_reddi2021_run(speed):
    cfg = speed.compose_config(speed.SETTINGS["reddi2021"], quiet=False)
    # round 0, every 20th of rounds 1-1100 (55), each of rounds 1101-1200 (100)
    assert speed.evaluations_of(cfg) == 156
    # 60 s to the end of round 1, then 1199 rounds of 10 s and 155 evaluations of 20 s
    hours = speed.projected_hours(hand_made("reddi2021"), 1200, 156)
    assert hours == pytest.approx((60 + 1199 * 10 + 155 * 20) / 3600)
    assert speed.projection_line([hand_made("reddi2021")]) == (
        "Projected full-scale reddi2021 run (1200 rounds; 156 evaluations of the whole test "
        f"split: round 0, every 20 rounds and each of the last 100): {hours:.1f} h, from the "
        "start to round 1, the median round and the measured evaluation above (checkpoints and "
        "tracking not included)."
    )


def test_the_table_of_the_committed_measurements(speed, capsys):
    committed = SPEED.parent / "measured" / "speed_2core.json"
    reports = speed.main(["--table", str(committed)])
    out = capsys.readouterr().out
    fedlm, plain = reports[0]["fedlm"]["round_seconds"], reports[0]["plain"]["round_seconds"]
    ratio = statistics.median([f / p for f, p in zip(fedlm[1:], plain[1:], strict=True)])
    assert f"{ratio:.2f}" == "0.69"  # where the file's own sum ratio says 0.71
    assert "| reddi2021 | 6 | 11.39 | 14.06 | 0.69 |" in out
    assert "| tutorial | 6 | 5.50 | 4.25 | 1.29 |" in out
    assert out.splitlines()[2].endswith("| `+experiment=reddi2021 experiment_scale=full` |")
    assert "Projected full-scale reddi2021 run (1200 rounds; 156 evaluations" in out


def test_the_readmes_performance_table_is_the_table_of_the_committed_files(speed, capsys):
    readme = (SPEED.parents[1] / "README.md").read_text()
    start = next(line for line in readme.splitlines() if line.startswith("<!-- speed table:"))
    files = start.split("--table ", 1)[1].split("`", 1)[0].split()
    assert start == speed.table_markers(files)[0]
    reports = speed.main(["--table", *[str(SPEED.parents[1] / f) for f in files]])
    block = readme.split(start + "\n", 1)[1].split("\n" + speed.TABLE_END, 1)[0]
    assert block == capsys.readouterr().out.rstrip("\n") == speed.table_block(reports)
    assert [r["setting"] for r in reports] == ["reddi2021", "tutorial", "mcmahan2017"]


def test_readme_puts_the_table_between_its_markers_and_refuses_a_file_without_them(
    speed, tmp_path, capsys
):
    path = tmp_path / "speed.json"
    path.write_text(json.dumps({"machine": {}, "settings": [hand_made()]}))
    start, end = speed.table_markers([str(path)])
    markdown = tmp_path / "README.md"
    markdown.write_text(f"# Performance\n\n{start}\nan old table\n{end}\n\nAfter.\n")
    reports = speed.main(["--table", str(path), "--readme", str(markdown)])
    table = speed.table_block(reports)
    assert markdown.read_text() == f"# Performance\n\n{start}\n{table}\n{end}\n\nAfter.\n"
    assert not list(tmp_path.glob("*.tmp"))  # written by a temporary file renamed into place
    markdown.write_text("no markers\n")
    with pytest.raises(SystemExit, match=r"--readme .*README.md: expected the line '<!-- speed"):
        speed.main(["--table", str(path), "--readme", str(markdown)])
    assert markdown.read_text() == "no markers\n"
    with pytest.raises(SystemExit, match=r"--table .*missing.json: not a JSON file of this bench"):
        speed.main(["--table", str(tmp_path / "missing.json")])


def test_the_benchmark_sets_the_evaluation_schedule_itself(speed):
    # The reddi2021 study evaluates each of its last 100 rounds, which 6 rounds cannot hold.
    from fedlm.checks import validate

    cfg = speed.compose_config([*speed.SETTINGS["reddi2021"], "training.rounds=6"])
    assert (cfg.eval.every, cfg.eval.final_window, cfg.eval.generate_length) == (0, 0, 0)
    validate(cfg)  # what refused `--settings reddi2021 --rounds 6` before it measured anything
    assert speed.evaluations_of(cfg) == 2  # round 0 and the last: in neither side's round seconds


@pytest.mark.slow  # runs the benchmark end to end: 15-50 s each
@pytest.mark.parametrize("local_workers", [1, 2])
def test_two_rounds_on_the_tiny_model_match_plain_tensorflow(
    speed, tmp_path, capsys, local_workers
):
    out = tmp_path / "speed.json"
    argv = ["--settings", "custom", "--rounds", "2", "--json", str(out), "--"]
    speed.main([*argv, *TINY, f"runtime.local_workers={local_workers}"])

    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| setting | rounds | fedlm s/round | plain TF s/round")
    assert "| custom | 2 |" in table
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
    # The JSON's figures are those its round times give, and the table shows them.
    figures = speed.round_figures(fedlm["round_seconds"], plain["round_seconds"])
    assert {key: report[key] for key in figures} == figures
    assert fedlm["median_round_seconds"] == figures["fedlm_median_round_seconds"]
    assert f"| {report['round_ratio']:.2f} |" in table
    evaluation = report["evaluation"]
    assert evaluation["accuracy_fedlm"] == pytest.approx(evaluation["accuracy_keras"], abs=1e-6)
    assert evaluation["sequences"] > 0 and evaluation["fedlm_seconds"] > 0
    assert fedlm["peak_rss_mib"] >= fedlm["peak_driver_rss_mib"] > 0
