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
from typing import BinaryIO, TextIO

from fedlm.cli.callbacks import SWEPT_KEYS_ENV
from fedlm.errors import DiskFullError
from fedlm.io import is_disk_full
from fedlm.tracking.run_info import short_value


class LogFile:
    """A job's log file, written unbuffered. Writing stops at the first write that fails (the
    console goes on, so that the error is still shown); a full disk raises
    :class:`DiskFullError` naming the file."""

    def __init__(self, file: BinaryIO, path: str | os.PathLike):
        self.file, self.path, self.failed = file, path, False

    def write(self, text: str) -> None:
        if self.failed or not text:
            return
        try:
            self.file.write(text.encode("utf-8", "replace"))
        except OSError as error:
            self.failed = True
            if is_disk_full(error):
                raise DiskFullError(self.path, "writing the job's log") from error
            raise


class Tee(io.TextIOBase):
    """A text stream writing to ``console`` (each line after ``prefix``) and to ``log``."""

    def __init__(self, console: TextIO, log: LogFile, prefix: str = ""):
        self.console, self.log, self.prefix = console, log, prefix
        self._line_start = True

    def write(self, text: str) -> int:
        shown = text
        if self.prefix and text:
            pieces = []
            for piece in text.splitlines(keepends=True):
                pieces.append(self.prefix + piece if self._line_start else piece)
                self._line_start = piece.endswith(("\n", "\r"))
            shown = "".join(pieces)
        self.console.write(shown)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()  # the log is unbuffered

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
    """Write everything printed in this block to ``path`` (appended) as well as to the console.

    However the block ends (a full disk under the log included), the console streams are back in
    place before anything else is reported.
    """
    stdout, stderr = sys.stdout, sys.stderr
    with open(path, "ab", buffering=0) as file:
        log = LogFile(file, path)
        sys.stdout, sys.stderr = Tee(stdout, log, prefix), Tee(stderr, log, prefix)
        try:
            yield
        except Exception:  # Hydra shows the traceback on the console; the log keeps it too
            with contextlib.suppress(Exception):
                log.write(traceback.format_exc())
            raise
        finally:
            sys.stdout, sys.stderr = stdout, stderr
            with contextlib.suppress(Exception):  # never hide the error that ended the block
                stdout.flush()
                stderr.flush()
