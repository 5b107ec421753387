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

A speaker's name is where LEAF's parse goes wrong; the name of a character line is read by these
rules, each a general one (LEAF's regular expression stops at the first period and knows only
letters and spaces):

- names may have apostrophes and hyphens (``VARRO'S SERVANT``, ``LUCIUS' SERVANT``,
  ``FIRST SERVING-MAN``); LEAF drops these speeches as non-text.
- a name goes on past a period when what it has so far is a fragment, a title abbreviation
  (``Mrs. Page.``), a single letter (``M. Wife.``) or an ordinal alone (``THIRD. WITCH.``), or
  when the next period-ended word is itself a speaker's name in the play, written in the same case
  (``Cap. Wife.``, the wife of Capulet; ``VARRO. CLAUDIO.``, both speaking). LEAF cuts these to
  the first word, merging Mistress Page and Mistress Ford into one ``MRS``.
- in a play that writes names in capitals, a "name" with more than one word not in capitals is
  verse of the current speech that lost its indentation (``HORTENSIO will be quit with thee by
  changing.``), not a speaker.
- names of a play that differ only in spaces, hyphens or apostrophes (a typo's
  ``ANTIPHOLUS OFEPHESUS``) are one speaker, under the spelling used most.
- a bare title (``KING``) is the play's one speaker named by that title and a name
  (``KING HENRY``), when there is exactly one; with two (``KING EDWARD``, ``KING HENRY``) or none
  it stays a speaker of its own.

:data:`PARSER_VERSION` numbers the partition these rules make; every database fedlm builds
records it, so that one built by an older parser is not taken for a current one.

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

# 1: LEAF's names (the first period ends a name); 2: the name rules above. Bump it whenever a
# change of the parse changes the clients or their examples.
PARSER_VERSION = 2

PLAY_START = "by William Shakespeare"
_NAME = r"[a-zA-Z][a-zA-Z' -]*"
_SPEAKER = re.compile(rf"({_NAME})\. (.*)")
_NAME_PART = re.compile(rf"({_NAME})\.(?: (.*)|$)")  # a further period-ended part of a name
_HEADING = re.compile(r"(ACT|SCENE)\b")  # "ACT I. SCENE 1" reads as a speaker at column 0
TITLE_ABBREVIATIONS = frozenset({"MR", "MRS", "MS", "DR", "ST"})
ORDINALS = frozenset(
    {"FIRST", "SECOND", "THIRD", "FOURTH", "FIFTH", "SIXTH", "SEVENTH", "EIGHTH", "NINTH", "TENTH"}
)
TITLES = frozenset(
    {
        "KING", "QUEEN", "PRINCE", "PRINCESS", "DUKE", "DUCHESS", "LORD", "LADY", "SIR", "DAME",
        "MASTER", "MISTRESS", "MR", "MRS", "COUNT", "COUNTESS", "EARL", "CARDINAL", "BISHOP",
        "ARCHBISHOP", "EMPEROR", "EMPRESS",
    }
)  # fmt: skip


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


def _normal(name: str) -> str:
    return " ".join(name.split()).upper()


def _speaker(line: str, indent: int) -> tuple[str, str] | None:
    """(first part of the name as written, the rest) if ``line`` is a character line with its
    name at column ``indent``."""
    if not line.startswith(" " * indent) or line[indent : indent + 1] in ("", " "):
        return None
    match = _SPEAKER.fullmatch(line[indent:])
    if match is None or _HEADING.match(match.group(1).upper()):
        return None
    return match.group(1).strip(), match.group(2).strip()


def _is_fragment(name: str) -> bool:
    """A name that cannot be all of a speaker's name: a title abbreviation, a letter, an ordinal."""
    name = _normal(name)
    return name in TITLE_ABBREVIATIONS or name in ORDINALS or len(name) == 1


def _full_name(first: str, text: str, names: set[str]) -> tuple[str, str]:
    """(name as written, text) of a character line: ``first`` goes on over the next period-ended
    parts of ``text`` while it is a fragment, or while the next part is one of the play's
    ``names`` written in the same case (``Cap. Wife.``, ``VARRO. CLAUDIO.``)."""
    name = first
    while match := _NAME_PART.fullmatch(text):
        part = match.group(1).strip()
        same_case = part.isupper() == name.isupper()
        if not (_is_fragment(name) or (same_case and _normal(part) in names)):
            break
        name, text = f"{name} {part}", (match.group(2) or "").strip()
    return name, text


def _in_capitals(name: str) -> bool:
    """Whether a name is written as a play that writes names in capitals writes them: at most one
    word not in capitals (``JAQUES de BOYS``, ``SIR Toby``, ``Mrs. PAGE``, ``Celia``), unlike
    verse that lost its indentation (``HORTENSIO will be quit with thee by changing.``)."""
    return sum(not word.isupper() for word in name.split()) <= 1


def _speaker_of_variants(counts: collections.Counter[str]) -> dict[str, str]:
    """Name -> the speaker it is: spellings with the same letters are the one used most, and
    a bare title is the one speaker named by that title and a name, if there is exactly one."""
    by_letters = collections.defaultdict(list)
    for name in counts:
        by_letters[re.sub(r"[^A-Z]", "", name)].append(name)
    speaker = {}
    for variants in by_letters.values():
        used_most = max(variants, key=lambda name: (counts[name], len(name), name))
        speaker.update({name: used_most for name in variants})
    speakers = set(speaker.values())
    for title in TITLES & speakers:
        named = [name for name in speakers if name.startswith(title + " ")]
        if len(named) == 1:
            speaker.update({n: named[0] for n, s in speaker.items() if s == title})
    return speaker


def _name_column(lines: list[str]) -> int:
    """The most common indentation of ``NAME. text`` lines (2 where there are none)."""
    columns = collections.Counter()
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        if _speaker(line, indent):
            columns[indent] += 1
    return columns.most_common(1)[0][0] if columns else 2


def _speeches(lines: list[str]) -> tuple[dict[str, list[str]], int]:
    """Character -> examples (contiguous runs of lines) of one play, and its discarded lines."""
    name_column = _name_column(lines)
    continuation = " " * (name_column + 2)
    lines = [line.rstrip() for line in lines]
    character_lines = [_speaker(line, name_column) for line in lines]
    first_parts = [found[0] for found in character_lines if found]
    first_names = {_normal(name) for name in first_parts}
    in_capitals = 2 * sum(name.isupper() for name in first_parts) > len(first_parts)
    runs: list[tuple[str, list[str]]] = []  # (name, lines of one example), in text order
    speaker, run, in_notice, discarded = None, None, False, 0
    for line, found in zip(lines, character_lines, strict=True):
        name, text = _full_name(*found, first_names) if found else (None, "")
        lost_indent = name is not None and in_capitals and not _in_capitals(name)
        if in_notice or line.lstrip().startswith("<<"):
            in_notice = ">>" not in line
            speaker, run = None, None
        elif not line:
            run = None
        elif name is not None and not lost_indent:
            speaker, run = _normal(name), [text]
            runs.append((speaker, run))
        elif speaker is not None and (line.startswith(continuation) or lost_indent):
            if run is None:
                run = []
                runs.append((speaker, run))
            run.append(line.strip())
        else:
            speaker, run = None, None
            discarded += 1
    speaker_of = _speaker_of_variants(collections.Counter(name for name, _ in runs))
    examples = {speaker_of[name]: [] for name, _ in runs}  # a speaker may have no text at all
    for name, run in runs:
        if snippet := "\n".join(part for part in run if part):
            examples[speaker_of[name]].append(snippet)
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


def read_play_titles(path: str | os.PathLike) -> tuple[str, ...]:
    """Titles of every "play" of the text at ``path`` (the sonnets and poems too), in text order;
    a fast look without parsing the speeches."""
    lines = strip_gutenberg(read_book(path)).split("\n")
    return tuple(title for title, _, _ in _play_bounds(lines))
