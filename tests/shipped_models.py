"""The shipped model configs (conf/model/*.yaml), read through the schema, for the model tests."""

from __future__ import annotations

from omegaconf import OmegaConf

from fedlm.config import ModelConfig
from fedlm.paths import PROJECT_ROOT

MODEL_CONFIGS = PROJECT_ROOT / "conf" / "model"


def model_config(name: str, **changes) -> ModelConfig:
    """conf/model/<name>.yaml checked against the schema, with ``changes`` applied."""
    schema = OmegaConf.structured(ModelConfig)
    cfg = OmegaConf.to_object(
        OmegaConf.merge(schema, OmegaConf.load(MODEL_CONFIGS / f"{name}.yaml"))
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg
