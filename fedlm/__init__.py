"""fedlm: federated learning of character-level text-generation models on TFF, Hydra and MLflow."""

import os

# TensorFlow's C++ log lines, in this process and in the TFF workers it starts (which inherit the
# environment), off by default: on a CPU machine every start opens with three "E ... Unable to
# register cuDNN/cuFFT/cuBLAS factory" lines, and TFF's workers print "E ... grappler ... Failed
# to detect the fetch node(s)" at every computation; none of them is an error of the run.
# `TF_CPP_MIN_LOG_LEVEL=0 uv run fedlm-train ...` shows them all. Must be set before TensorFlow
# is imported. fedlm's own warnings are printed by Python and never hidden.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
