"""Plain-text books: reading Project Gutenberg files, and the pre-training corpus.

Gutenberg files come in several shapes: with or without the ``*** START OF ...`` header and
``*** END OF ...`` footer, CRLF or LF line ends, UTF-8 (with or without a byte-order mark) or
Latin-1 (``a_christmas_carol.txt`` has one Latin-1 byte, in "Laocoön", and a stray ``?`` where
its byte-order mark was, inside the header). :func:`read_book` and :func:`strip_gutenberg` turn
any of them into the book's own text with ``\\n`` line ends.

The pre-training corpus is a handful of such books encoded with the vocabulary's
unknown-character policy; :func:`split_holdout` keeps the end of every book for validation, so
validation text is never seen in training.
"""

from __future__ import annotations

import codecs
import collections
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedlm import paths, vocab
from fedlm.errors import ConfigError, DataError

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_END = re.compile(
    r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg)",
    re.IGNORECASE,
)


def default_books_dir() -> Path:
    return paths.shared_data_dir() / "dickens"


def read_book(path: str | os.PathLike) -> str:
    """The text of ``path`` with ``\\n`` line ends: UTF-16 when it starts with a UTF-16 byte-order
    mark, else UTF-8 (a byte-order mark is dropped), else Latin-1. Raises :class:`DataError` if
    the file is missing or unreadable."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read text file {path}: {e.strerror or e}") from e
    return decode_book(raw)


def decode_book(raw: bytes) -> str:
    """:func:`read_book`'s decoding of a file's bytes."""
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")  # the byte-order mark tells the byte order
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # never fails: every byte is a Latin-1 character
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str) -> str:
    """The book inside a Project Gutenberg file: the text between the ``*** START OF`` line and
    the first ``*** END OF`` (or ``End of the Project Gutenberg``) line, where present, without
    the blank lines around it. Text without the markers is returned whole."""
    lines = text.split("\n")
    start = next((i + 1 for i, line in enumerate(lines) if _START.match(line)), 0)
    end = next((i for i in range(start, len(lines)) if _END.match(lines[i])), len(lines))
    return "\n".join(lines[start:end]).strip("\n")


@dataclass(frozen=True)
class Corpus:
    """Books encoded under one unknown-character policy, in file order."""

    texts: dict[str, str]  # book name (file stem) -> text without the Gutenberg header/footer
    ids: dict[str, list[int]]  # book name -> character ids under `unknown_policy`
    unknown_chars: collections.Counter[str]  # characters outside the vocabulary, all books
    unknown_policy: str

    @property
    def num_chars(self) -> int:
        return sum(len(ids) for ids in self.ids.values())


def _book_paths(sources: Iterable[str | os.PathLike]) -> list[Path]:
    books = []
    for source in sources:
        source = Path(source).expanduser()
        if source.is_dir():
            found = sorted(source.glob("*.txt"))
            if not found:
                raise DataError(f"corpus directory {source} has no *.txt files: expected books")
            books.extend(found)
        elif source.is_file():
            books.append(source)
        else:
            raise DataError(
                f"corpus file {source} does not exist: expected a .txt book or a directory of them"
            )
    return books


def load_corpus(
    sources: Iterable[str | os.PathLike] | None = None, unknown_chars: str = "drop"
) -> Corpus:
    """Read the books in ``sources`` (files, or directories whose ``*.txt`` are read in name
    order; default: the shared Dickens books) and encode them under the ``unknown_chars`` policy.
    """
    vocab.check_policy(unknown_chars)
    books = _book_paths([default_books_dir()] if sources is None else sources)
    if not books:
        raise DataError("no corpus files given: expected at least one .txt book")
    texts, ids, unknown = {}, {}, collections.Counter()
    for path in books:
        text = strip_gutenberg(read_book(path))
        if not text.strip():
            raise DataError(f"corpus file {path} has no text after its Gutenberg header/footer")
        if path.stem in texts:
            raise DataError(f"two corpus files are named {path.stem!r}: expected distinct names")
        texts[path.stem] = text
        ids[path.stem] = vocab.encode(text, unknown_chars)
        unknown.update(vocab.unknown_chars(text))
    return Corpus(texts=texts, ids=ids, unknown_chars=unknown, unknown_policy=unknown_chars)


def split_holdout(
    ids_by_book: Mapping[str, Sequence[int]], fraction: float, key: str = "holdout_fraction"
) -> tuple[list[int], list[int]]:
    """(train, validation) ids: the last ``int(len * fraction)`` ids of every book go to
    validation, the rest to training, each concatenated in book order."""
    if not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
        raise ConfigError(key, fraction, "a number in [0, 1)")
    train, validation = [], []
    for ids in ids_by_book.values():
        cut = len(ids) - int(len(ids) * fraction)
        train.extend(ids[:cut])
        validation.extend(ids[cut:])
    return train, validation
