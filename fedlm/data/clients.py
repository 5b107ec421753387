"""Which federated dataset a run gets, and every client's snippets as plain strings.

:func:`load_client_data` resolves ``data.name`` / ``data.cache_dir`` / ``data.source`` to TFF's
(train, test) ``ClientData``: TFF's synthetic Shakespeare, or federated Shakespeare from
``cache_dir/shakespeare.sqlite`` (built from ``source`` first, or downloaded by TFF, when it is
not there yet).

:func:`read_snippets` reads the same SQLite file directly, with sqlite3 and a few lines of
protobuf decoding instead of TensorFlow, so that ``fedlm-train`` can size every client (which are
empty under the current preprocessing, how many characters each has) in about a second, before
it imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from fedlm import paths
from fedlm.config import DATASETS, DataConfig
from fedlm.data.build import (
    DATABASE_NAME,
    build_shakespeare,
    check_cache_dir,
    database_path,
    no_autotune,
    read_stamp,
    stale_reason,
)
from fedlm.data.fetch import SHAKESPEARE, at_hand, complete_works_path
from fedlm.data.shakespeare_text import PARSER_VERSION
from fedlm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tensorflow_federated.python.simulation.datasets.client_data import ClientData

SPLITS = ("train", "test")


def default_source() -> Path:
    """The 1994 Gutenberg text of the complete works: in the shared data directory, else fedlm's
    fetched copy where that is there (``fedlm-data fetch``), else the shared path."""
    shared = paths.shared_data_dir() / SHAKESPEARE.relative
    return at_hand(shared, SHAKESPEARE.relative) or shared


def default_cache_dir() -> Path:
    return paths.cache_dir() / "shakespeare"


def load_client_data(
    name: str,
    cache_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    source_url: str | None = None,
) -> tuple[ClientData, ClientData]:
    """(train, test) ``ClientData`` of the dataset ``name`` (``shakespeare`` or ``synthetic``).

    For ``shakespeare``: ``cache_dir/shakespeare.sqlite`` if it exists and is not an older
    fedlm build (:func:`~fedlm.data.build.stale_reason`; one that is, is rebuilt from ``source``
    with a line saying why, or refused without one); else built there from ``source`` if given;
    else TFF's download into ``cache_dir``. A ``source`` that is not there is fedlm's fetched
    copy, fetched from ``source_url`` first if need be (:mod:`fedlm.data.fetch`). Raises
    :class:`ConfigError` for an unknown name and :class:`DataError` for a missing source, a
    stale build that cannot be rebuilt or a failed download.
    """
    if name not in DATASETS:
        raise ConfigError("data.name", name, DATASETS)
    import tensorflow_federated as tff  # here only: importing TFF costs seconds

    if name == "synthetic":
        synthetic = tff.simulation.datasets.shakespeare.get_synthetic()
        return synthetic, synthetic
    cache_dir = check_cache_dir(cache_dir)
    database = database_path(cache_dir)
    if database.exists():
        _rebuild_if_stale(database, source, source_url)
        return _load(database)
    if source is not None:
        source = complete_works_path(source, source_url)
        print(f"Building federated Shakespeare from {source} into {database}")
        build_shakespeare(source, cache_dir, skip_existing=True)
        return _load(database)
    try:
        return tff.simulation.datasets.shakespeare.load_data(cache_dir=str(cache_dir))
    except Exception as e:
        # A download cut off half way leaves a file that load_data would take for the dataset.
        database.unlink(missing_ok=True)
        raise DataError(
            f"data.cache_dir={str(cache_dir)!r} has no {DATABASE_NAME} and TFF could not "
            f"download it ({type(e).__name__}: {e}). Either build it from the Gutenberg text: "
            f"`uv run fedlm-data build --source {default_source()} --cache-dir {cache_dir}` "
            f"(or set data.source to that file), or set data.cache_dir to a directory that has "
            f"{DATABASE_NAME}."
        ) from e


def build_stamp(name: str, cache_dir: str | os.PathLike) -> dict[str, str] | None:
    """The build stamp (parser version, source and its SHA-256: :mod:`fedlm.data.build`) of the
    database that :func:`load_client_data` reads for ``name``; None for synthetic data and for a
    database without one (TFF's download)."""
    if name != "shakespeare":
        return None
    return read_stamp(database_path(Path(cache_dir).expanduser()))


def _rebuild_if_stale(
    database: Path, source: str | os.PathLike | None, source_url: str | None
) -> None:
    found = at_hand(source, SHAKESPEARE.relative) if source is not None else None
    reason = stale_reason(database, found)
    if reason is None:
        return
    if found is None and source is not None and source_url is not None:
        found = complete_works_path(source, source_url)
    if found is None:
        raise DataError(
            f"{database} {reason}, and this fedlm's is version {PARSER_VERSION}: its clients "
            f"differ. Rebuild it: `uv run fedlm-data build --source {default_source()} "
            f"--cache-dir {database.parent} --force` (or set data.source to the Gutenberg text "
            "and it is rebuilt on load)"
        )
    print(
        f"Rebuilding {database} from {found}: it {reason}, this fedlm's is version {PARSER_VERSION}"
    )
    build_shakespeare(found, database.parent, force=True, log=lambda _: None)


def _load(database: Path) -> tuple[ClientData, ClientData]:
    import tensorflow_federated as tff

    try:
        return tff.simulation.datasets.shakespeare.load_data(cache_dir=str(database.parent))
    except Exception as e:
        raise DataError(
            f"{database} cannot be read as federated Shakespeare ({type(e).__name__}: {e}): "
            "expected TFF's SQLite format; rebuild it with `fedlm-data build --force`"
        ) from e


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes, number: int) -> list[bytes]:
    """The length-delimited fields ``number`` of a serialized protobuf message, in order."""
    found, pos = [], 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        wire_type = key & 7
        if wire_type == 2:  # length-delimited: a message, string or bytes
            length, pos = _varint(message, pos)
            if key >> 3 == number:
                found.append(message[pos : pos + length])
            pos += length
        elif wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type in (1, 5):  # 64- or 32-bit
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
    return found


def _snippet(serialized_example: bytes) -> str:
    """The ``snippets`` string of a serialized ``tf.train.Example``, decoded without TensorFlow:
    Example.features (1) -> Features.feature (1, map entries of key 1 and value 2) ->
    Feature.bytes_list (1) -> BytesList.value (1)."""
    for features in _fields(serialized_example, 1):
        for entry in _fields(features, 1):
            if _fields(entry, 1) == [b"snippets"]:
                for value in _fields(entry, 2):
                    for bytes_list in _fields(value, 1):
                        return _fields(bytes_list, 1)[0].decode("utf-8")
    raise ValueError("no 'snippets' feature")


def read_snippets(cache_dir: str | os.PathLike, split: str = "train") -> dict[str, list[str]]:
    """Client id -> snippets of ``split`` in ``cache_dir/shakespeare.sqlite``, in the order
    ``ClientData`` yields them, client ids sorted; read with sqlite3 and protobuf only."""
    if split not in SPLITS:
        raise ConfigError("split", split, SPLITS)
    database = database_path(cache_dir)
    if not database.is_file():
        raise DataError(
            f"{database} does not exist: expected a federated Shakespeare database "
            "(`fedlm-data build`)"
        )
    try:
        with contextlib.closing(sqlite3.connect(database)) as con:
            ids = con.execute(
                "SELECT DISTINCT client_id FROM client_metadata WHERE split_name = ?", (split,)
            ).fetchall()
            rows = con.execute(
                "SELECT client_id, serialized_example_proto FROM examples "
                "WHERE split_name = ? ORDER BY rowid",
                (split,),
            ).fetchall()
    except sqlite3.DatabaseError as e:
        raise DataError(f"{database} is not a federated Shakespeare database: {e}") from e
    snippets = {cid: [] for (cid,) in sorted(ids)}
    try:
        for cid, serialized in rows:
            snippets.setdefault(cid, []).append(_snippet(serialized))
    except (ValueError, IndexError) as e:
        raise DataError(f"{database} does not hold tf.train.Example snippets: {e}") from e
    return snippets


def client_data_snippets(client_data: ClientData) -> dict[str, list[str]]:
    """Client id -> snippets of any ``ClientData`` with a ``snippets`` string feature (e.g. the
    synthetic data), through tf.data; slower than :func:`read_snippets` for the full dataset."""
    options = no_autotune()
    snippets = {}
    for cid in client_data.client_ids:
        dataset = client_data.create_tf_dataset_for_client(cid).with_options(options)
        snippets[cid] = [x["snippets"].numpy().decode("utf-8") for x in dataset]
    return snippets


def client_snippets(client_data: ClientData, data: DataConfig, split: str) -> dict[str, list[str]]:
    """Every client's snippets of ``split`` of the data that :func:`load_client_data` loaded for
    ``data``: read from the SQLite file for ``shakespeare``, through ``client_data`` otherwise."""
    if data.name == "shakespeare":
        return read_snippets(data.cache_dir, split)
    return client_data_snippets(client_data)
