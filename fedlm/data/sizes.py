"""How many batches each client makes under a pipeline: pure Python, no TensorFlow.

``fedlm-train`` sizes every client before it imports TensorFlow, so that a ``clients_per_round``
larger than the clients with data, or a ``seq_len`` at which no client has one full batch, is
reported in a second (:class:`fedlm.data.pipelines.BatchCounter`). The pipelines
(``fedlm/data/preprocess.py``, ``fedlm/data/paper.py``) count with these same functions; their
tests check the counts against the batches they yield.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from fedlm import vocab
from fedlm.errors import ConfigError

# str.translate table that deletes the vocabulary's characters, leaving the unknown ones.
_DELETE_KNOWN = {ord(c): None for c in vocab.CHARS}


def tutorial_characters(snippets: Iterable[str], unknown_chars: str = "drop") -> int:
    """Character ids the tutorial pipeline makes of a client's snippets (as many as
    ``vocab.encode`` gives: ``drop`` leaves out the characters outside the vocabulary)."""
    vocab.check_policy(unknown_chars)
    if unknown_chars != "drop":
        return sum(len(s) for s in snippets)
    return sum(len(s) - len(s.translate(_DELETE_KNOWN)) for s in snippets)


def tutorial_batches(
    snippets: Iterable[str], seq_len: int, batch_size: int, unknown_chars: str, pad: bool
) -> int:
    """Batches one epoch of the tutorial pipeline yields, before any cap."""
    chars = tutorial_characters(snippets, unknown_chars)
    round_ = math.ceil if pad else math.floor
    return round_(round_(chars / (seq_len + 1)) / batch_size)


def paper_snippet_tokens(snippet: str | bytes) -> int:
    """Tokens TFF's baseline makes of one snippet before padding: bos, one per UTF-8 byte, eos."""
    data = snippet.encode("utf-8") if isinstance(snippet, str) else snippet
    return len(data) + 2


def paper_sequences(snippets: Iterable[str | bytes], seq_len: int) -> int:
    """(seq_len + 1)-token chunks one epoch yields: each snippet is padded to whole chunks."""
    return sum(math.ceil(paper_snippet_tokens(s) / (seq_len + 1)) for s in snippets)


def paper_batches(snippets: Iterable[str | bytes], seq_len: int, batch_size: int) -> int:
    """Batches one epoch of the paper pipeline yields (the last one may be short)."""
    return math.ceil(paper_sequences(snippets, seq_len) / batch_size)


def eligible_clients(
    pipeline, snippets: Mapping[str, Sequence[str]], key: str | None = "training.seq_len"
) -> dict[str, int]:
    """Client id -> batches per epoch under ``pipeline`` (anything with ``num_batches``, such as
    a :class:`fedlm.data.pipelines.BatchCounter` or a pipeline), for the clients with at least
    one batch.

    Raises :class:`ConfigError` naming ``key`` (the sequence length) when no client has one;
    ``key=None``: returns an empty dict then.
    """
    sizes = {c: pipeline.num_batches(s) for c, s in snippets.items()}
    eligible = {c: n for c, n in sizes.items() if n > 0}
    if key is not None and snippets and not eligible:
        seq_len, batch_size = pipeline.seq_len, pipeline.batch_size
        policy = getattr(pipeline, "unknown_chars", None) or "drop"
        largest = max(tutorial_characters(s, policy) for s in snippets.values())
        raise ConfigError(
            key,
            seq_len,
            f"a length at which some client has one full batch: a batch of {batch_size} "
            f"sequences of {seq_len} + 1 characters needs {batch_size * (seq_len + 1):,} "
            f"characters and the largest of the {len(snippets):,} clients has {largest:,} "
            "(lower training.seq_len or training.batch_size, or set data.pad=true)",
        )
    return eligible
