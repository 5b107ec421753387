"""The reference texts, fetched into fedlm's cache when they are not at hand.

fedlm builds federated Shakespeare from the 1994 Project Gutenberg edition of the Complete Works
and pre-trains on two Dickens books. Each is read from the data directory first
(``FEDLM_DATA_DIR``, default ``../shared/data``), then from fedlm's own copy under
``FEDLM_CACHE_DIR/texts/`` (the same relative path), and only when neither is there is it
downloaded into that copy from its configured address (``data.source_url``, ``corpus_urls``).

A download goes to ``<name>.<hash of the address>.part`` beside its target, resumed with an HTTP
``Range`` request when an earlier one was cut off, and becomes the target (renamed into place)
only when it is complete and its content is the text expected. The server's bytes cannot be known
in advance, so the content is what is checked: the Complete Works must parse into the 1994
edition's 36 plays and 1,117 clients (:func:`check_complete_works`), a Dickens book must name its
title near the top and hold at least a minimum of text (:func:`check_book`). An address may serve
the plain text or a zip holding it (Gutenberg's ``1994-01-100.zip`` holds ``100.txt``).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import os
import re
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import fedlm
from fedlm import paths
from fedlm.config import check_url
from fedlm.data.corpus import decode_book, strip_gutenberg
from fedlm.data.shakespeare_text import parse_complete_works
from fedlm.errors import DataError
from fedlm.io import atomic_path, folder_lock

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 60.0  # per connection attempt and per read, not for the whole download

# What fedlm's parser makes of the 1994 edition (checked on the shared copy, 2026-12-02).
PLAYS_1994 = (
    "ALLS WELL THAT ENDS WELL", "THE TRAGEDY OF ANTONY AND CLEOPATRA", "AS YOU LIKE IT",
    "THE COMEDY OF ERRORS", "THE TRAGEDY OF CORIOLANUS", "CYMBELINE",
    "THE TRAGEDY OF HAMLET, PRINCE OF DENMARK", "THE FIRST PART OF KING HENRY THE FOURTH",
    "SECOND PART OF KING HENRY IV", "THE LIFE OF KING HENRY THE FIFTH",
    "THE FIRST PART OF HENRY THE SIXTH", "THE SECOND PART OF KING HENRY THE SIXTH",
    "THE THIRD PART OF KING HENRY THE SIXTH", "KING HENRY THE EIGHTH", "KING JOHN",
    "THE TRAGEDY OF JULIUS CAESAR", "THE TRAGEDY OF KING LEAR", "LOVE'S LABOUR'S LOST",
    "THE TRAGEDY OF MACBETH", "MEASURE FOR MEASURE", "THE MERCHANT OF VENICE",
    "THE MERRY WIVES OF WINDSOR", "A MIDSUMMER NIGHT'S DREAM", "MUCH ADO ABOUT NOTHING",
    "THE TRAGEDY OF OTHELLO, MOOR OF VENICE", "KING RICHARD THE SECOND", "KING RICHARD III",
    "THE TRAGEDY OF ROMEO AND JULIET", "THE TAMING OF THE SHREW", "THE TEMPEST",
    "THE LIFE OF TIMON OF ATHENS", "THE TRAGEDY OF TITUS ANDRONICUS",
    "THE HISTORY OF TROILUS AND CRESSIDA", "TWELFTH NIGHT; OR, WHAT YOU WILL",
    "THE TWO GENTLEMEN OF VERONA", "THE WINTER'S TALE",
)  # fmt: skip
CLIENTS_1994 = 1117  # at the build's defaults (test_fraction 0.2, min_examples 2)


def check_complete_works(
    text: str, plays: Sequence[str] = PLAYS_1994, clients: int = CLIENTS_1994
) -> str | None:
    """Why ``text`` is not the edition whose parse gives ``plays`` and ``clients``, or None."""
    try:
        parsed = parse_complete_works(text)
    except DataError as e:
        return str(e).removeprefix("<text> ")
    if parsed.plays == tuple(plays) and len(parsed.train) == clients:
        return None
    missing = [title for title in plays if title not in parsed.plays]
    return (
        f"its parse gives {len(parsed.plays)} plays and {len(parsed.train):,} clients, expected "
        f"{len(plays)} and {clients:,}"
        + (
            f" (missing {len(missing)}: {', '.join(missing[:3])}{', ...' * (len(missing) > 3)})"
            if missing
            else ""
        )
    )


def check_book(text: str, title: str | None = None, min_chars: int = 1) -> str | None:
    """Why ``text`` is not the book: ``title`` not in its first lines (the Gutenberg header's
    ``Title:`` line or the title page), or under ``min_chars`` characters of book; or None."""
    book = strip_gutenberg(text)
    head = " ".join(text[:20_000].split()).casefold()
    if title is not None and " ".join(title.split()).casefold() not in head:
        return f"its first 20,000 characters do not name {title!r}"
    if len(book) < min_chars:
        return f"it has {len(book):,} characters of text, expected at least {min_chars:,}"
    return None


@dataclass(frozen=True)
class Text:
    """A text fedlm can fetch: its path under the data directory and what it must be."""

    relative: str  # under FEDLM_DATA_DIR, and under FEDLM_CACHE_DIR/texts for fedlm's copy
    what: str  # for messages
    check: Callable[[str], str | None]  # why a downloaded text is not this one, or None


SHAKESPEARE = Text(
    "shakespeare/complete_works_gutenberg100_1994.txt",
    "the 1994 Project Gutenberg Complete Works of Shakespeare",
    check_complete_works,
)
# The minimums are about 90% of the books' text in the shared copies (755,346 and 158,414
# characters without the Gutenberg header and footer): a cut-off file or an error page fails.
BOOKS = {
    book.relative: book
    for book in (
        Text(
            "dickens/a_tale_of_two_cities.txt",
            "A Tale of Two Cities (Project Gutenberg #98)",
            functools.partial(check_book, title="A Tale of Two Cities", min_chars=680_000),
        ),
        Text(
            "dickens/a_christmas_carol.txt",
            "A Christmas Carol (Project Gutenberg #46)",
            functools.partial(check_book, title="A Christmas Carol", min_chars=140_000),
        ),
    )
}


def fetched_path(relative: str | os.PathLike) -> Path:
    """fedlm's own copy of a text of the data directory: ``FEDLM_CACHE_DIR/texts/<relative>``."""
    return paths.cache_dir() / "texts" / relative


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _show(stream: TextIO, name: str, done: int, total: int | None, end: str = "") -> None:
    if total:
        filled = 20 * done // total
        bar = f"[{'#' * filled}{'.' * (20 - filled)}] {100 * done // total:3d}% "
        amount = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB"
    else:
        bar, amount = "", f"{done / 1e6:.1f} MB"
    stream.write(f"\r{name} {bar}{amount}{end}")
    stream.flush()


def _total_of_range(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes (?:\*|\d+-\d+)/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _download(url: str, part: Path, name: str, stream: TextIO, resume: bool = True) -> None:
    """Bring ``url``'s bytes into ``part``, going on from its end when it exists; raise an
    ``OSError`` (``URLError``), ``HTTPException``, or :class:`EOFError` when cut short, keeping
    what arrived; ``name`` labels the progress bar, shown when ``stream`` is a terminal."""
    offset = part.stat().st_size if resume and part.exists() else 0
    headers = {"User-Agent": f"fedlm/{fedlm.__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S
        )
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:  # 416: nothing after offset
            raise
        if _total_of_range(e.headers.get("Content-Range")) == offset:
            return  # the part was whole already
        return _download(url, part, name, stream, resume=False)
    with response:
        content_range = response.headers.get("Content-Range", "")
        if offset and response.status != 206:
            offset = 0  # the server sent the whole file
        elif offset and not content_range.startswith(f"bytes {offset}-"):
            return _download(url, part, name, stream, resume=False)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        done, shown_at = offset, 0.0
        show = stream.isatty()
        with open(part, "ab" if offset else "wb") as f:
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                done += len(chunk)
                if show and time.monotonic() - shown_at > 0.2:
                    _show(stream, name, done, total)
                    shown_at = time.monotonic()
        if show:
            _show(stream, name, done, total, end="\n")
        if total is not None and done < total:
            raise EOFError(f"the connection closed after {done:,} of {total:,} bytes")


def _text_bytes(raw: bytes) -> bytes | str:
    """The text inside ``raw`` (itself, or the largest ``.txt`` of a zip), or why there is none."""
    if not raw.startswith(b"PK\x03\x04"):
        return raw
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            texts = [i for i in archive.infolist() if i.filename.lower().endswith(".txt")]
            if not texts:
                return "it is a zip archive without a .txt file"
            return archive.read(max(texts, key=lambda info: info.file_size))
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        return f"it is a zip archive that cannot be read ({_describe(e)})"


def fetch(
    url: str,
    text: Text,
    target: Path | None = None,
    key: str = "data.source_url",
    log: Callable[[str], None] = print,
    stream: TextIO | None = None,
) -> Path:
    """Download ``text`` from ``url`` into ``target`` (default :func:`fetched_path`), check it and
    rename it into place; return ``target``. A progress bar goes to ``stream`` (default stderr)
    when it is a terminal. Raises :class:`DataError` in one line naming the address, the error
    and where to put the file by hand; a download cut short leaves its ``.part`` to resume from.
    """
    target = Path(target or fetched_path(text.relative))
    stream = stream or sys.stderr
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    part = target.with_name(f"{target.name}.{digest}.part")
    unzipped = " (unzipped)" if url.lower().endswith(".zip") else ""
    by_hand = f"download it yourself and put the text{unzipped} at {target}"
    with folder_lock(target.parent):  # parallel jobs download it once
        if target.is_file():
            return target
        start = time.perf_counter()
        try:
            _download(url, part, target.stem, stream)  # a bar of at most 80 columns
        except (OSError, EOFError, ValueError, http.client.HTTPException) as e:
            kept = part.stat().st_size if part.exists() else 0
            again = f"run again to resume from {kept:,} bytes, or " if kept else ""
            raise DataError(
                f"cannot fetch {text.what} from {key}={url!r} ({_describe(e)}): {again}{by_hand}"
                f", or set {key} to a mirror"
            ) from e
        raw = part.read_bytes()
        found = _text_bytes(raw)
        reason = found if isinstance(found, str) else text.check(decode_book(found))
        if reason is not None:
            part.unlink()  # whole but wrong: resuming it cannot help
            raise DataError(
                f"{key}={url!r} did not give {text.what}: {reason} ({len(raw):,} bytes "
                f"arrived); {by_hand}, or set {key} to a mirror"
            )
        with atomic_path(target) as tmp:
            tmp.write_bytes(found)
            tmp.chmod(0o644)
        for leftover in target.parent.glob(f"{target.name}.*.part"):
            leftover.unlink(missing_ok=True)
    log(f"fetched {target} ({len(found) / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s)")
    return target


def at_hand(path: str | os.PathLike, relative: str | os.PathLike) -> Path | None:
    """``path`` if it is a file, else fedlm's fetched copy of ``relative`` if that is; else None."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    fetched = fetched_path(relative)
    return fetched if fetched.is_file() else None


def complete_works_path(
    source: str | os.PathLike, source_url: str | None, log: Callable[[str], None] = print
) -> Path:
    """The Complete Works to build from: ``data.source`` if it is a file, else fedlm's fetched
    copy, else that copy fetched from ``source_url`` (after a line saying so)."""
    found = at_hand(source, SHAKESPEARE.relative)
    if found is not None:
        return found
    target = fetched_path(SHAKESPEARE.relative)
    if source_url is None:
        raise DataError(
            f"data.source={str(source)!r} does not exist and data.source_url is null: expected "
            f"{SHAKESPEARE.what} at data.source or at {target}, or data.source_url set to its "
            "address (conf/data/shakespeare.yaml names Gutenberg's) to fetch it from"
        )
    log(f"data.source={str(source)!r} is not here: fetching {SHAKESPEARE.what} into {target}")
    return fetch(source_url, SHAKESPEARE, target, key="data.source_url", log=log)


def corpus_files(
    entries: Sequence[str], urls: Mapping[str, str], log: Callable[[str], None] = print
) -> list[Path]:
    """The files of the pre-training corpus: each entry (relative: under the data directory)
    as it is, else fedlm's fetched copy, else fetched from ``urls[<its file stem>]`` (the book's
    name in :class:`~fedlm.data.corpus.Corpus`) after a line saying so. An entry that is not
    there and has no address is returned as given, for :func:`~fedlm.data.corpus.load_corpus`
    to report."""
    for name, url in urls.items():
        check_url(f"corpus_urls.{name}", url)
    files = []
    for entry in entries:
        path = Path(entry).expanduser()
        relative = path.name if path.is_absolute() else entry
        path = path if path.is_absolute() else paths.shared_data_dir() / path
        found = path if path.exists() else at_hand(path, relative)
        url = urls.get(path.stem)
        if found is None and url:
            target = fetched_path(relative)
            book = BOOKS.get(entry, Text(entry, entry, check_book))
            log(f"corpus file {path} is not here: fetching {book.what} into {target}")
            found = fetch(url, book, target, key=f"corpus_urls.{path.stem}", log=log)
        files.append(found or path)
    return files
