"""Writing federated Shakespeare in TFF's own SQLite format.

``DIR/shakespeare.sqlite`` is the file that ``tff.simulation.datasets.shakespeare.load_data``
downloads and caches, so ``load_data(cache_dir=DIR)`` reads a build unchanged and offline.
TFF's ``save_to_sql_client_data`` gives each client id one split, while every Shakespeare client
is in both ``train`` and ``test``: it is called once per split, into scratch files, whose
``examples`` and ``client_metadata`` rows are then combined into one database. All of it happens
in temporary files beside the target, renamed into place at the end, so a failed or interrupted
build leaves no partial database and never replaces a good one. A build holds a lock on the cache
dir: parallel jobs on a new cache dir build the database once, and the temporary files that a
killed build left behind are removed by the next one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fedlm.data.shakespeare_text import ShakespeareClients, read_complete_works
from fedlm.errors import DataError
from fedlm.io import atomic_path, folder_lock

DATABASE_NAME = "shakespeare.sqlite"  # the name load_data looks for in its cache_dir


def no_autotune():
    """tf.data options without autotuning: save_to_sql_client_data iterates one small dataset
    per client, and autotuning makes each iterator cost ~17 ms, six times the whole iteration."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def database_path(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir).expanduser() / DATABASE_NAME


def check_cache_dir(cache_dir: str | os.PathLike, key: str = "data.cache_dir") -> Path:
    """``cache_dir`` as a path; :class:`DataError` naming ``key`` if it exists and is no folder."""
    folder = Path(cache_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        hint = (
            f"; set {key}={str(folder.parent)!r}, the folder that holds it"
            if folder.name == DATABASE_NAME
            else ""
        )
        raise DataError(
            f"{key}={str(cache_dir)!r} is a file: expected the folder that holds (or will hold) "
            f"{DATABASE_NAME}{hint}"
        )
    return folder


def remove_leftovers(target: Path) -> list[Path]:
    """Remove the temporary files and scratch folders of earlier builds of ``target`` that were
    killed before they could clean up; return what was removed. Call it holding the build lock."""
    removed = []
    for path in target.parent.glob(f".{target.name}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.suffix == ".tmp":
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    return removed


def _combine(parts: Sequence[Path], database: Path) -> None:
    """Copy the tables of the first part, then every part's rows in order, into ``database``."""
    with contextlib.closing(sqlite3.connect(database)) as con:
        for i, part in enumerate(parts):
            con.execute("ATTACH DATABASE ? AS part", (str(part),))
            if i == 0:
                tables = con.execute("SELECT sql FROM part.sqlite_master WHERE type = 'table'")
                for (create_table,) in tables.fetchall():
                    con.execute(create_table)
            for table in ("examples", "client_metadata"):
                con.execute(f"INSERT INTO {table} SELECT * FROM part.{table} ORDER BY rowid")
            con.commit()
            con.execute("DETACH DATABASE part")


def write_sql_client_data(
    splits: Mapping[str, Mapping[str, Sequence[str]]],
    target: str | os.PathLike,
    log: Callable[[str], None] = print,
) -> None:
    """Write ``{split: {client_id: snippets}}`` to the SQLite file ``target`` (element
    ``{'snippets': tf.string}``), atomically; an existing ``target`` is replaced only on success.
    """
    import tensorflow as tf  # here only: importing TensorFlow and TFF costs seconds
    import tensorflow_federated as tff

    options = no_autotune()
    target = Path(target)
    with (
        atomic_path(target) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch,
    ):
        parts = []
        for split, clients in splits.items():
            log(f"writing split {split!r}: {len(clients)} clients")
            part = Path(scratch) / f"{split}.sqlite"

            def dataset_fn(cid, clients=clients):
                snippets = tf.constant(list(clients[cid]), dtype=tf.string)
                return tf.data.Dataset.from_tensor_slices({"snippets": snippets}).with_options(
                    options
                )

            tff.simulation.datasets.save_to_sql_client_data(
                client_ids=list(clients),
                dataset_fn=dataset_fn,
                database_filepath=str(part),
                split_names_by_client_id={cid: split for cid in clients},
            )
            parts.append(part)
        _combine(parts, tmp)
        tmp.chmod(0o644)  # as TFF's own download; the temporary file was private (0600)


def build_shakespeare(
    source: str | os.PathLike,
    cache_dir: str | os.PathLike,
    force: bool = False,
    test_fraction: float = 0.2,
    min_examples: int = 2,
    log: Callable[[str], None] = print,
    skip_existing: bool = False,
) -> ShakespeareClients | None:
    """Parse the complete works at ``source`` and write ``cache_dir/shakespeare.sqlite``.

    Refuses to replace an existing database unless ``force``; with ``skip_existing`` an existing
    one (perhaps built by another process meanwhile) is kept and None returned. Returns the parsed
    clients.
    """
    target = database_path(check_cache_dir(cache_dir))
    if target.exists() and not force:
        if skip_existing:
            return None
        raise DataError(f"{target} already exists: expected force=True (--force) to rebuild it")
    clients = read_complete_works(source, test_fraction, min_examples)  # before any folder is made
    with folder_lock(target.parent):
        for path in remove_leftovers(target):
            log(f"removed {path}, left by an interrupted build")
        if target.exists() and not force:  # built by another process meanwhile
            if skip_existing:
                return None
            raise DataError(f"{target} already exists: expected force=True (--force) to rebuild it")
        write_sql_client_data({"train": clients.train, "test": clients.test}, target, log=log)
    return clients
