"""Fixtures of the model tests: an isolated fedlm cache, the tiny config and a saved tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from shipped_models import model_config

from fedlm.config import ModelConfig
from fedlm.models.architectures import build_model
from fedlm.models.pretrained import save_model


@pytest.fixture(autouse=True)
def own_cache(isolated_cache) -> Path:
    """Every model test gets its own fedlm cache (tests/conftest.py)."""
    return isolated_cache


@pytest.fixture
def tiny() -> ModelConfig:
    return model_config("tiny")


@pytest.fixture
def saved_tiny(tmp_path, tiny) -> tuple[Path, list]:
    """A tiny model (vocabulary 86) saved the tutorial's way, and its weights."""
    tf.keras.utils.set_random_seed(1)
    model = build_model(tiny, 86)
    return save_model(model, tmp_path / "tiny.h5"), model.get_weights()
