"""SIGTERM and SIGHUP as a normal exit, so that ``finally`` blocks run (temporary files removed,
TFF workers ended, the MLflow run marked KILLED). Imports no TensorFlow."""

from __future__ import annotations

import signal
import threading


def _exit_on_signal(signum: int, frame: object) -> None:
    # A second signal of the same kind ends the process at once (the default action).
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit(128 + signum)`` so ``finally`` blocks run.

    Only from the main thread, and only for signals that still have their default action (a
    launcher's own handler, e.g. submitit's, is left alone). SIGINT already raises
    ``KeyboardInterrupt``.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _exit_on_signal)
