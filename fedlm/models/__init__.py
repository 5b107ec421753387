"""Character models: architectures, pre-trained weights, generation, metrics."""

from fedlm.models.architectures import build_model
from fedlm.models.generate import generate_text, load_weights_for_generation
from fedlm.models.pretrained import (
    load_pretrained_weights,
    pretrained_available,
    resolve_pretrained,
)

__all__ = [
    "build_model",
    "generate_text",
    "load_pretrained_weights",
    "load_weights_for_generation",
    "pretrained_available",
    "resolve_pretrained",
]
