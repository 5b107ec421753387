"""Suite-wide: every TFF worker started by a test dies with its parent, and a test that leaves
one running fails (the worker is ended then)."""

import contextlib
import os
import signal
import sys

import pytest


def _patch_tff() -> None:
    """Start TFF's workers through fedlm's patch (with a parent-death signal, recorded, and TFF's
    context dropped at exit) once a test module has imported TFF; no 13 s import otherwise."""
    if "tensorflow_federated" in sys.modules:
        from fedlm.federated import workers

        workers.patch_worker_start()


def pytest_collection_finish(session):
    # Also when every test is deselected (`-m slow` with none marked): without the patch's exit
    # handler, TFF's ServiceManager.__del__ fails at interpreter exit with a traceback.
    _patch_tff()


@pytest.fixture(autouse=True)
def no_tff_worker_left(request):
    """Fail the test that leaves a TFF worker running, and end the worker."""
    _patch_tff()  # a test may import TFF itself
    yield
    if "tensorflow_federated" not in sys.modules:
        return
    from fedlm.federated import workers

    left = workers.running_workers()
    stray = workers.stray_workers()  # started before or without the patch
    if not left and not stray:
        return
    workers.end_workers()
    for pid in stray:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    pytest.fail(
        f"{request.node.nodeid} left TFF workers running (ended now): recorded {left}, "
        f"unpatched {stray}. Run TFF computations inside "
        "fedlm.federated.runtime.execution_context.",
        pytrace=False,
    )
