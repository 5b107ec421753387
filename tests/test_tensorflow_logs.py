"""TensorFlow's C++ log lines are off by default (fedlm/__init__.py), one switch shows them, and
fedlm's own warnings always show."""

import os
import subprocess
import sys

import pytest

# Imports what fedlm-train imports, then prints a warning the way fedlm does.
SCRIPT = """
import os, sys
import fedlm.cli.train
import tensorflow, tensorflow_federated
print("fedlm: warning: a warning of fedlm's own", file=sys.stderr)
print(os.environ["TF_CPP_MIN_LOG_LEVEL"])
"""


def run_script():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.slow  # a fedlm-train subprocess: ~50 s loaded
def test_tensorflow_is_quiet_by_default_and_fedlms_warnings_show():
    """On a CPU machine TensorFlow 2.14 opens with three "E ... Unable to register cuDNN/cuFFT/
    cuBLAS factory" lines at its default level (and with fedlm's former 2: they are errors)."""
    done = run_script()
    assert done.returncode == 0, done.stderr
    assert done.stderr == "fedlm: warning: a warning of fedlm's own\n"
    assert done.stdout == "3\n"


def test_a_level_the_user_sets_is_kept():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    done = subprocess.run(
        [sys.executable, "-c", "import os, fedlm; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.stdout == "0\n"
