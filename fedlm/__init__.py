"""fedlm: federated learning of character-level text-generation models on TFF, Hydra and MLflow."""

import os

# Silence TensorFlow's and TFF worker's C++ log lines; must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
