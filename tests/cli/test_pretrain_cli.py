import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import fedlm.cli.pretrain as cli
from fedlm.config import PretrainConfig


def _compose(overrides=()):
    with initialize_config_dir(config_dir=cli.CONFIG_DIR, version_base="1.3"):
        return compose(config_name="pretrain", overrides=list(overrides))


def test_shipped_config_is_the_dickens_gru_on_the_two_books():
    cfg = OmegaConf.to_object(_compose())
    assert isinstance(cfg, PretrainConfig)
    assert (cfg.model.name, cfg.model.units, cfg.model.pretrained) == ("dickens_gru", 1024, "none")
    assert cfg.corpus == ["dickens/a_tale_of_two_cities.txt", "dickens/a_christmas_carol.txt"]
    assert cfg.corpus_urls == {  # fetched from Gutenberg when they are not at hand
        "a_tale_of_two_cities": "https://www.gutenberg.org/cache/epub/98/pg98.txt",
        "a_christmas_carol": "https://www.gutenberg.org/cache/epub/46/pg46.txt",
    }
    assert (cfg.seq_len, cfg.batch_size, cfg.optimizer, cfg.output) == (100, 8, "adam", None)


@pytest.mark.parametrize("model", ["dickens_gru", "lstm_2x256", "tiny"])
def test_every_model_composes(model):
    assert OmegaConf.to_object(_compose([f"model={model}"])).model.name == model


@pytest.mark.parametrize("typo", ["epocs=1", "model.unit=3", "batch_size=eight"])
def test_a_typo_or_wrong_type_fails_at_start(typo):
    with pytest.raises(ConfigCompositionException):
        _compose([typo])


def test_fedlm_pretrain_runs_and_saves(tmp_path, monkeypatch, capfd):
    book = tmp_path / "book.txt"
    book.write_text("A merry Christmas, uncle! God save you! " * 300)
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "fedlm-pretrain",
            "model=tiny",
            f"corpus=[{book}]",
            "epochs=1",
            "steps_per_epoch=2",
            "seq_len=20",
            "batch_size=4",
            "shakespeare=none",
        ],
    )
    cli.main()
    out = capfd.readouterr().out
    saved = tmp_path / "cache" / "pretrained" / "tiny.h5"
    assert f"saved: {saved}" in out and saved.exists()
    assert "validation_accuracy: " in out and "step 2/2 (epoch 1/1)" in out


@pytest.mark.slow  # a fedlm-pretrain process of its own, to see how it exits: ~20 s
def test_fedlm_pretrain_of_the_papers_pipeline_exits_without_a_traceback(tmp_path):
    """The papers' pipeline imports TFF; its default context must not fail at exit."""
    book = tmp_path / "book.txt"
    book.write_text("A merry Christmas, uncle! God save you!\n\n" * 300)
    env = {
        **os.environ,
        "FEDLM_CACHE_DIR": str(tmp_path / "cache"),
        "FEDLM_RESULTS_DIR": str(tmp_path / "results"),
    }
    argv = [f"corpus=[{book}]", "model=tiny", "pipeline=paper", "epochs=1", "steps_per_epoch=2"]
    argv += ["seq_len=20", "batch_size=4", "shakespeare=none", f"hydra.run.dir={tmp_path}/out"]
    done = subprocess.run(
        [sys.executable, "-m", "fedlm.cli.pretrain", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "saved: " in done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_fedlm_pretrain_reports_a_bad_value_in_one_line(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("FEDLM_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(sys, "argv", ["fedlm-pretrain", "model=tiny", "optimizer=rmsprop"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert "fedlm-pretrain: error: optimizer='rmsprop' is not allowed" in capfd.readouterr().err


# fedlm-pretrain's main() in a fresh process: exit code, stderr's last line, TensorFlow imported?
SCRIPT = """
import contextlib, io, json, sys
from fedlm.cli import pretrain
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        pretrain.main()
        code = 0
    except SystemExit as exit:
        code = exit.code
print(json.dumps([code, err.getvalue().strip().splitlines()[-1:], "tensorflow" in sys.modules]))
"""


def test_a_book_that_cannot_be_fetched_is_one_line_before_tensorflow(tmp_path, closed_port_url):
    url = f"{closed_port_url}/pg46.txt"
    env = {
        **os.environ,
        "FEDLM_DATA_DIR": str(tmp_path / "data"),
        "FEDLM_CACHE_DIR": str(tmp_path / "cache"),
        "FEDLM_RESULTS_DIR": str(tmp_path / "results"),
    }
    # the Carol alone (never Gutenberg's address: tests stay off the internet)
    argv = [
        "fedlm-pretrain",
        "corpus=[dickens/a_christmas_carol.txt]",
        f"corpus_urls={{a_christmas_carol: '{url}'}}",
        f"hydra.run.dir={tmp_path}",
    ]
    code = f"import sys; sys.argv = {argv!r}\n" + SCRIPT
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [
        2,
        [
            "fedlm-pretrain: error: cannot fetch A Christmas Carol (Project Gutenberg #46) from "
            f"corpus_urls.a_christmas_carol='{url}' (ConnectionRefusedError: [Errno 111] "
            "Connection refused): download it yourself and put the text at "
            f"{tmp_path}/cache/texts/dickens/a_christmas_carol.txt, or set "
            "corpus_urls.a_christmas_carol to a mirror"
        ],
        False,
    ]
