"""A job's console output, also written to its log file (``<output dir>/train.log``).

Hydra's log file only receives ``logging`` records, and fedlm prints: its round lines, generated
text, warnings and the closing lines would otherwise reach the console only. While a job runs,
``sys.stdout`` and ``sys.stderr`` are replaced by streams that write every line to the console
and to the job's log file; under a multirun, console lines start with the job's values of the
swept keys (``[server_optimizer=adam seed=1] round 3/5 | ...``), so that parallel jobs' lines can
be told apart. The file gets the lines as printed, without the prefix.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

from fedlm.cli.callbacks import SWEPT_KEYS_ENV
from fedlm.tracking.run_info import short_value


class Tee(io.TextIOBase):
    """A text stream writing to ``console`` (each line after ``prefix``) and to ``log``."""

    def __init__(self, console: TextIO, log: TextIO, prefix: str = ""):
        self.console, self.log, self.prefix = console, log, prefix
        self._line_start = True

    def write(self, text: str) -> int:
        self.log.write(text)
        shown = text
        if self.prefix and text:
            pieces = []
            for piece in text.splitlines(keepends=True):
                pieces.append(self.prefix + piece if self._line_start else piece)
                self._line_start = piece.endswith(("\n", "\r"))
            shown = "".join(pieces)
        self.console.write(shown)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def fileno(self) -> int:  # child processes (TFF's worker) write to the console directly
        return self.console.fileno()

    def isatty(self) -> bool:
        return self.console.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self.console, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


def job_prefix(overrides: Mapping[str, str], keys: Sequence[str] | None = None) -> str:
    """``[key=value ...] `` for the swept ``keys`` (default: the sweep's, from the environment)
    that this job's ``overrides`` set, floats to 3 significant digits; empty when there are none."""
    if keys is None:
        keys = os.environ.get(SWEPT_KEYS_ENV, "").split()
    shown = [f"{key}={short_value(overrides[key])}" for key in keys if key in overrides]
    return f"[{' '.join(shown)}] " if shown else ""


@contextlib.contextmanager
def job_log(path: str | os.PathLike, prefix: str = "") -> Iterator[None]:
    """Write everything printed in this block to ``path`` (appended) as well as to the console."""
    stdout, stderr = sys.stdout, sys.stderr
    with open(path, "a", encoding="utf-8", buffering=1) as log:
        sys.stdout = Tee(stdout, log, prefix)
        sys.stderr = Tee(stderr, log, prefix)
        try:
            yield
        except Exception:  # Hydra shows the traceback on the console; the log keeps it too
            log.write(traceback.format_exc())
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = stdout, stderr
