"""Federated Shakespeare from the Gutenberg text: one client per (play, character).

The partition follows the LEAF benchmark's script (``preprocess_shakespeare.py``), which TFF's
federated Shakespeare came from:

- a play starts at each ``by William Shakespeare`` line; its title is the nearest non-empty line
  above it. "Plays" with fewer than two characters (the sonnets, the poems) are left out.
- a speech starts at a character line, ``NAME. text``, and goes on over the continuation lines
  below it, indented two more spaces than the name (or more: stage directions, songs). Most plays
  put names at column 2; *The Comedy of Errors* of the 1994 edition puts them at column 0, so the
  name column of every play is found from its own lines (the most common indentation of
  ``NAME. text`` lines) instead of special-casing a title.
- a line that is neither blank, a character line nor a continuation ends the speech and is
  discarded (titles, cast lists, act and scene headings, stage directions at the name column).
  The ``<<THIS ELECTRONIC VERSION ...>>`` notices between acts are skipped and end the speech.

Where LEAF makes every line an example, an example here is one contiguous run of a character's
lines: the character line and its continuation lines up to the next blank line, joined with
``\\n``, indentation and trailing spaces stripped (the form of TFF's published snippets). A blank
line does not end the speech: continuation lines after it (the speech going on after a stage
direction, the next verse of a song) start the character's next example, as LEAF attributes them.

Each client's last ``max(int(n * test_fraction), 1)`` examples are its test split (LEAF's rule).
"""

from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass

from fedlm import vocab
from fedlm.data.corpus import read_book, strip_gutenberg
from fedlm.errors import ConfigError, DataError

PLAY_START = "by William Shakespeare"
_SPEAKER = re.compile(r"([a-zA-Z][a-zA-Z ]*)\. (.*)")
_HEADING = re.compile(r"(ACT|SCENE)\b")  # "ACT I. SCENE 1" reads as a speaker at column 0


@dataclass(frozen=True)
class ShakespeareClients:
    """Clients of the federated Shakespeare dataset, each with train and test snippets."""

    train: dict[str, list[str]]  # client id -> snippets, in text order
    test: dict[str, list[str]]
    plays: tuple[str, ...]  # titles of the plays kept, in text order
    dropped_clients: int  # characters with fewer than `min_examples` examples
    discarded_lines: int  # non-blank lines of the kept plays that are in no example
    unknown_chars: collections.Counter[str]  # characters outside the vocabulary, all examples

    @property
    def client_ids(self) -> list[str]:
        return sorted(self.train)

    @property
    def num_train_examples(self) -> int:
        return sum(len(s) for s in self.train.values())

    @property
    def num_test_examples(self) -> int:
        return sum(len(s) for s in self.test.values())


def client_id(play: str, character: str) -> str:
    """LEAF's client id: play and character joined with ``_``, every run of characters other
    than letters and digits turned into one ``_``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{play} {character}").strip("_")


def _play_bounds(lines: list[str]) -> list[tuple[str, int, int]]:
    """(title, first line, end line) of every play; a play ends where the next one's title is."""
    starts = []
    for i, line in enumerate(lines):
        if line.strip() != PLAY_START:
            continue
        title_at = next((j for j in range(i - 1, -1, -1) if lines[j].strip()), None)
        if title_at is None:
            raise DataError(f"line {i + 1}: {PLAY_START!r} has no title line above it")
        starts.append((lines[title_at].strip(), title_at, i + 1))
    ends = [title_at for _, title_at, _ in starts[1:]] + [len(lines)]
    if not starts:
        return []
    return [(title, first, end) for (title, _, first), end in zip(starts, ends, strict=True)]


def _speaker(line: str, indent: int) -> tuple[str, str] | None:
    """(NAME, text) if ``line`` is a character line with its name at column ``indent``."""
    if not line.startswith(" " * indent) or line[indent : indent + 1] in ("", " "):
        return None
    match = _SPEAKER.fullmatch(line[indent:])
    if match is None:
        return None
    return " ".join(match.group(1).split()).upper(), match.group(2).strip()


def _name_column(lines: list[str]) -> int:
    """The most common indentation of ``NAME. text`` lines (2 where there are none)."""
    columns = collections.Counter()
    for line in lines:
        stripped = line.lstrip(" ")
        match = _SPEAKER.fullmatch(stripped)
        if match and not _HEADING.match(match.group(1).upper()):
            columns[len(line) - len(stripped)] += 1
    return columns.most_common(1)[0][0] if columns else 2


def _speeches(lines: list[str]) -> tuple[dict[str, list[str]], int]:
    """Character -> examples (contiguous runs of lines) of one play, and its discarded lines."""
    name_column = _name_column(lines)
    continuation = " " * (name_column + 2)
    runs: dict[str, list[list[str]]] = collections.defaultdict(list)
    speaker, run, in_notice, discarded = None, None, False, 0
    for line in lines:
        line = line.rstrip()
        if in_notice or line.lstrip().startswith("<<"):
            in_notice = ">>" not in line
            speaker, run = None, None
        elif not line:
            run = None
        elif (found := _speaker(line, name_column)) and not _HEADING.match(found[0]):
            speaker, run = found[0], [found[1]]
            runs[speaker].append(run)
        elif speaker is not None and line.startswith(continuation):
            if run is None:
                run = []
                runs[speaker].append(run)
            run.append(line.strip())
        else:
            speaker, run = None, None
            discarded += 1
    examples = {}
    for name, name_runs in runs.items():
        snippets = ["\n".join(part for part in r if part) for r in name_runs]
        examples[name] = [s for s in snippets if s]
    return examples, discarded


def parse_complete_works(
    text: str, test_fraction: float = 0.2, min_examples: int = 2, source_name: str = "<text>"
) -> ShakespeareClients:
    """Split the text of the complete works into (play, character) clients (pure Python)."""
    if not isinstance(test_fraction, int | float) or not 0.0 <= test_fraction < 1.0:
        raise ConfigError("test_fraction", test_fraction, "a number in [0, 1)")
    if not isinstance(min_examples, int) or min_examples < 2:
        raise ConfigError(
            "min_examples", min_examples, "an integer >= 2 (one train and one test example)"
        )
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = strip_gutenberg(text).split("\n")
    examples: dict[str, list[str]] = collections.defaultdict(list)
    plays, discarded = [], 0
    for title, first, end in _play_bounds(lines):
        speeches, play_discarded = _speeches(lines[first:end])
        if len(speeches) < 2:  # the sonnets and poems
            continue
        plays.append(title)
        discarded += play_discarded
        for name, snippets in speeches.items():
            examples[client_id(title, name)].extend(snippets)
    if not plays:
        raise DataError(
            f"{source_name} has no plays: expected Shakespeare's complete works, each play "
            f"starting at a {PLAY_START!r} line below its title, with character lines "
            "'  NAME. text'"
        )
    train, test, unknown = {}, {}, collections.Counter()
    for cid, snippets in examples.items():
        if len(snippets) < min_examples:
            continue
        num_test = max(int(len(snippets) * test_fraction), 1)
        train[cid], test[cid] = snippets[:-num_test], snippets[-num_test:]
        for snippet in snippets:
            unknown.update(vocab.unknown_chars(snippet))
    if not train:
        raise DataError(f"{source_name}: no character has at least {min_examples} examples")
    return ShakespeareClients(
        train=train,
        test=test,
        plays=tuple(plays),
        dropped_clients=len(examples) - len(train),
        discarded_lines=discarded,
        unknown_chars=unknown,
    )


def read_complete_works(
    path: str | os.PathLike, test_fraction: float = 0.2, min_examples: int = 2
) -> ShakespeareClients:
    """:func:`parse_complete_works` of the text file at ``path``; :class:`DataError` if the file
    is missing, unreadable or has no plays."""
    return parse_complete_works(read_book(path), test_fraction, min_examples, source_name=str(path))
