"""Atomic writes (everything fedlm persists goes to a temporary file beside its target first)
and locks between processes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; rename it onto ``target`` on success.

    On any exception (or interrupt) the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# A full file system in the words of the OS, TensorFlow (which appends strerror) and SQLite.
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "database or disk is full")


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, says the file system is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(error) for words in DISK_FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the block.

    Processes taking the same lock run their blocks one at a time; the operating system releases
    it when its holder ends in any way, ``kill -9`` included (``flock`` on the folder itself, so
    no lock file is left behind). Not re-entrant: a process must not take a lock it holds.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


_held_locks: dict[Path, int] = {}  # lock file -> open descriptor, for the process's life


def hold_lock(path: str | os.PathLike) -> tuple[int, str] | None:
    """Take the exclusive lock of the file ``path`` (created if missing) without waiting, and
    hold it until :func:`release_lock` or the end of the process, however it ends (``kill -9``
    included: the kernel releases a ``flock``). The file records the holder's pid and host.

    Returns None once this process holds it (also when it already did), or the (pid, host) of the
    process that holds it (pid 0 when that process has not written its pid yet).
    """
    path = Path(path).absolute()
    if path in _held_locks:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        os.close(fd)
        pid = int(words[0]) if words and words[0].isdigit() else 0
        return pid, words[1] if len(words) > 1 else ""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    _held_locks[path] = fd
    return None


def release_lock(path: str | os.PathLike) -> None:
    """Give up a lock :func:`hold_lock` took (nothing when this process does not hold it)."""
    fd = _held_locks.pop(Path(path).absolute(), None)
    if fd is not None:
        os.close(fd)  # releases the lock; the file stays, for the next holder
