"""The typed config is closed: every key is checked against the dataclasses of fedlm/config.py."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fedlm.cli.common import CONFIG_DIR
from fedlm.cli.train import run_context  # noqa: F401 (registers the schema and resolvers)
from fedlm.config import TrainConfig, check_key, check_keys
from fedlm.errors import ConfigError, UnknownKeyError
from fedlm.federated.aggregators import AGGREGATORS
from fedlm.federated.process import ALGORITHMS, OPTIMIZERS
from fedlm.federated.samplers import SAMPLERS

TRAINING_KEYS = (
    "rounds, clients_per_round, local_epochs, max_batches_per_client, seq_len, batch_size, "
    "shuffle_buffer, stop_at"
)


def test_a_misspelt_key_names_the_valid_keys_of_its_group_and_the_closest_one():
    with pytest.raises(UnknownKeyError) as error:
        check_key("training.rouds", TrainConfig)
    assert str(error.value) == (
        "training.rouds is not a config key (did you mean training.rounds?): expected one of the "
        f"keys of training: {TRAINING_KEYS}"
    )
    assert isinstance(error.value, ConfigError)  # reported like every config error


def test_a_misspelt_group_is_named_with_the_whole_key():
    with pytest.raises(
        UnknownKeyError,
        match=r"^traning.rounds is not a config key \(did you "
        r"mean training.rounds\?\): expected one of the top-level keys and config "
        r"groups: data, model, .*, experiment_scale, experiment$",
    ):
        check_key("traning.rounds", TrainConfig, groups=["experiment", "data"])


def test_keys_below_a_value_are_refused():
    with pytest.raises(UnknownKeyError, match="^seed.x is not a config key: seed is a value"):
        check_key("seed.x", TrainConfig)


@pytest.mark.parametrize(
    "key", ["training.rounds", "client_optimizer.learning_rate", "data", "resume", "eval.prompt"]
)
def test_known_keys_pass(key):
    check_key(key, TrainConfig)


def compose_train(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "output_dir=."])
    return OmegaConf.to_container(cfg, resolve=False)


def test_the_shipped_config_and_its_studies_have_only_known_keys():
    check_keys(compose_train(), TrainConfig)
    for study in ("seed_tutorial", "finetune", "reddi2021", "mcmahan2017", "sampling"):
        check_keys(compose_train(f"+experiment={study}"), TrainConfig)


@pytest.mark.parametrize(
    ("override", "key"),
    [("+training.rouds=3", "training.rouds"), ("++data.sorce=x", "data.sorce"), ("+foo=1", "foo")],
)
def test_a_key_hydra_adds_with_plus_is_refused_after_composition(override, key):
    """Hydra adds `+key=value` to a structured config, and OmegaConf.to_object drops it."""
    composed = compose_train(override)
    with pytest.raises(UnknownKeyError, match=rf"^{key} is not a config key"):
        check_keys(composed, TrainConfig)


COMPOSED = Path(__file__).parent / "composed"


@pytest.mark.parametrize(
    ("snapshot", "overrides"),
    [
        ("train", []),
        ("reddi2021_fedadagrad", ["+experiment=reddi2021", "reddi2021=fedadagrad"]),
        ("dp", ["+experiment=dp"]),
    ],
)
def test_the_composed_config_is_the_one_the_paper_runs_logged(snapshot, overrides):
    """Every key and value fedlm-train composes, as the running paper studies logged them: resume
    compares the logged params, so moving a default between conf/ and the dataclasses must not
    change one."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        composed = compose("train", overrides=overrides)
    assert OmegaConf.to_yaml(composed) == (COMPOSED / f"{snapshot}.yaml").read_text()


@pytest.mark.parametrize(
    ("group", "registry"),
    [
        ("sampler", SAMPLERS),
        ("client_optimizer", OPTIMIZERS),
        ("server_optimizer", OPTIMIZERS),
        ("algorithm", ALGORITHMS),
        ("aggregator", AGGREGATORS),
    ],
)
def test_each_choice_in_conf_names_a_builder_and_each_builder_has_one(group, registry):
    """A group's names are its module's registry: conf/<group>/*.yaml pick from them."""
    names = set()
    for choice in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
        names.add(compose_train(f"{group}={choice.stem}")[group]["name"])
    assert names == set(registry)
