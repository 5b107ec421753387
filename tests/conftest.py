"""Suite-wide: every TFF worker started by a test dies with its parent and is ended at the end."""

import contextlib
import os
import signal
import sys
import warnings

import pytest


@pytest.fixture(scope="session", autouse=True)
def tff_workers_end():
    """Start TFF's workers through fedlm's patch; at the end, end and report any still running.

    TFF is patched when a collected test module has imported it (no 13 s import otherwise).
    """
    from fedlm.federated import workers

    if "tensorflow_federated" in sys.modules:
        workers.patch_worker_start()
    yield
    left = workers.end_workers()
    stray = workers.stray_workers()  # started before or without the patch
    for pid in stray:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if left or stray:
        warnings.warn(
            f"TFF workers were still running at the end of the tests (ended now): recorded "
            f"{left}, unpatched {stray}. Run TFF computations inside "
            "fedlm.federated.runtime.execution_context.",
            stacklevel=1,
        )
