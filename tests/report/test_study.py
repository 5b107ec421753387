"""The study's paper.yaml: the shipped paper files and what they may hold.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from report_runs import paper_file

import fedlm.cli.train  # noqa: F401  (registers the train schema for compose)
from fedlm.cli.common import CONFIG_DIR
from fedlm.errors import ConfigError
from fedlm.report import (
    Study,
    find_study,
    load_study,
)
from fedlm.report.study import study_file


def test_shipped_paper_files_load_and_match_their_studies_settings():
    reddi = load_study(study_file("reddi2021"))
    assert (reddi.statistic, reddi.scale("full").last_rounds) == ("mean_last", 100)
    assert reddi.scale("quick").last_fraction == 0.1
    assert {n.label: n.value for n in reddi.numbers}["FedYogi"] == 57.2
    assert reddi.numbers[-1].match == {
        "server_optimizer.name": "sgd",
        "server_optimizer.momentum": "null",
    }
    mcmahan = load_study(study_file("mcmahan2017"))
    assert (mcmahan.statistic, mcmahan.scale("full").target_accuracy) == ("first_at_target", 0.54)
    assert [n.value for n in mcmahan.numbers] == [3906, 549, 164, 152, 41]
    assert find_study("sampling").numbers == ()
    assert find_study("no_such_study") == Study(name="no_such_study")


def test_the_shipped_mcmahan2017_full_scale_stops_at_the_target_its_report_counts_rounds_to():
    study = load_study(study_file("mcmahan2017"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=mcmahan2017", "output_dir=."])
    stop_at = OmegaConf.to_object(cfg).training.stop_at
    assert (stop_at.metric, stop_at.value) == (study.metric, study.scale("full").target_accuracy)
    assert str(stop_at) == "eval/accuracy >= 0.54"
    assert cfg.eval.every == 1  # every round is checked
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        quick = compose("train", overrides=["+experiment=mcmahan2017", "experiment_scale=quick"])
    assert quick.training.stop_at.metric is None  # the quick scale runs its 15 rounds


@pytest.mark.parametrize(
    ("extra", "key", "value"),
    [
        ("differences: data differs\n", "differences", "'data differs'"),
        ("differences: [1, 2]\n", "differences", "[1, 2]"),
        ("scales:\n  full: {differences: {a: b}}\n", "scales.full.differences", "{'a': 'b'}"),
        ("scales:\n  full: [differences]\n", "scales.full", "['differences']"),
    ],
)
def test_a_differences_entry_that_is_not_a_list_of_strings_is_refused(tmp_path, extra, key, value):
    path = paper_file(tmp_path, extra)
    with pytest.raises(ConfigError) as error:
        load_study(path)
    assert str(error.value).startswith(f"{path}: {key}={value} is not allowed: expected a ")
