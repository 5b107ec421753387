"""The shipped config (conf/train.yaml) shrunk for tests, in one place: TFF's 3-client synthetic
Shakespeare, the tiny model, 2 clients a round, sequences of 10 in batches of 2. A test adds only
what it is about (rounds, batches, tracking, evaluation), later overrides winning."""

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fedlm.cli.common import CONFIG_DIR
from fedlm.cli.train import run_context  # noqa: F401  (registers the schema and resolvers)
from fedlm.config import TrainConfig

SHRUNK = [
    "data=synthetic",
    "model=tiny",
    "training.clients_per_round=2",
    "training.seq_len=10",
    "training.batch_size=2",
]


def compose_train(*overrides: str, shrunk: bool = True) -> TrainConfig:
    """conf/train.yaml composed as Hydra does (shrunk unless ``shrunk=False``), then
    ``overrides``, as the typed config."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*(SHRUNK if shrunk else []), *overrides])
    return OmegaConf.to_object(cfg)
