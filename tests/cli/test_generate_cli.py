import sys

import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import fedlm.cli.generate as cli
from fedlm.config import GenerateConfig
from fedlm.models.architectures import build_model
from fedlm.models.generate import generate_text
from fedlm.models.pretrained import save_model


def _compose(overrides=()):
    with initialize_config_dir(config_dir=cli.CONFIG_DIR, version_base="1.3"):
        return compose(config_name="generate", overrides=list(overrides))


def test_shipped_config_is_the_tutorials_generation():
    cfg = OmegaConf.to_object(_compose())
    assert isinstance(cfg, GenerateConfig)
    assert (cfg.model.name, cfg.model.pretrained) == ("dickens_gru", "dickens")
    assert (cfg.prompt, cfg.length, cfg.temperature) == (
        "What of TensorFlow Federated, you ask? ",
        200,
        1.0,
    )
    with pytest.raises(ConfigCompositionException):
        _compose(["lenght=5"])


@pytest.fixture
def saved(tmp_path):
    cfg = OmegaConf.to_object(_compose(["model=tiny"])).model
    tf.keras.utils.set_random_seed(5)
    model = build_model(cfg, 86)
    return save_model(model, tmp_path / "tiny.h5"), model.get_weights(), cfg


def test_fedlm_generate_prints_the_seeded_text(saved, monkeypatch, capfd):
    path, weights, cfg = saved
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "fedlm-generate",
            "model=tiny",
            f"model.pretrained={path}",
            "prompt='To be: '",
            "length=30",
            "temperature=0.5",
            "top_k=5",
            "seed=3",
        ],
    )
    cli.main()
    printed = capfd.readouterr().out.rstrip("\n").split("\n")[-1]
    assert printed == generate_text(weights, cfg, 86, "To be: ", 30, 0.5, 5, 3)


def test_fedlm_generate_lists_unknown_prompt_characters(saved, monkeypatch, capfd):
    path, _, _ = saved
    monkeypatch.setattr(
        sys, "argv", ["fedlm-generate", "model=tiny", f"model.pretrained={path}", "prompt='naïve'"]
    )
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert "not in it: ['ï']" in capfd.readouterr().err


def test_a_key_added_with_plus_is_refused_in_one_line(monkeypatch, capfd):
    monkeypatch.setattr(sys, "argv", ["fedlm-generate", "+lenght=5"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert capfd.readouterr().err.splitlines()[-1] == (
        "fedlm-generate: error: lenght is not a config key (did you mean length?): expected one "
        "of the top-level keys: model, prompt, length, temperature, top_k, seed, vocab_size"
    )


def test_an_option_hydra_cannot_find_is_one_line_and_exit_status_2(monkeypatch, capfd):
    monkeypatch.setattr(sys, "argv", ["fedlm-generate", "model=nope"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert capfd.readouterr().err == (
        "fedlm-generate: error: In 'generate': Could not find 'model/nope': expected one of "
        "dickens_gru, lstm_2x256, tiny\n"
    )
