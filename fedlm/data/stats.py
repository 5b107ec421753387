"""Counts of a federated Shakespeare database, and how many clients a preprocessing leaves empty.

A client whose snippets make no full batch under the pipeline's settings (with the tutorial's
``drop_remainder``, fewer than ``(seq_len + 1) * batch_size`` characters) yields zero batches:
it cannot train and is left out of sampling. :func:`dataset_stats` counts them per split.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedlm import vocab
from fedlm.data.preprocess import TutorialPipeline


@dataclass(frozen=True)
class SplitStats:
    clients: int
    examples: int
    chars_min: int  # characters per client
    chars_median: float
    chars_max: int
    empty_clients: int  # clients with zero batches under the pipeline


@dataclass(frozen=True)
class DatasetStats:
    clients: int  # distinct client ids over the splits counted
    splits: dict[str, SplitStats]
    unknown_chars: collections.Counter[str]  # over every snippet of the splits counted
    pipeline: str  # the pipeline and settings that the empty-client counts are for


def split_stats(snippets: Mapping[str, Sequence[str]], pipeline: TutorialPipeline) -> SplitStats:
    chars = [sum(len(s) for s in client) for client in snippets.values()] or [0]
    return SplitStats(
        clients=len(snippets),
        examples=sum(len(client) for client in snippets.values()),
        chars_min=min(chars),
        chars_median=statistics.median(chars),
        chars_max=max(chars),
        empty_clients=sum(pipeline.num_batches(client) == 0 for client in snippets.values()),
    )


def dataset_stats(
    snippets_by_split: Mapping[str, Mapping[str, Sequence[str]]],
    pipeline: TutorialPipeline,
) -> DatasetStats:
    """Stats of ``{split: {client_id: snippets}}`` (see :func:`fedlm.data.clients.read_snippets`)
    under ``pipeline`` (any object with ``num_batches(snippets)``)."""
    unknown = collections.Counter()
    for snippets in snippets_by_split.values():
        for client in snippets.values():
            for snippet in client:
                unknown.update(vocab.unknown_chars(snippet))
    return DatasetStats(
        clients=len(set().union(*snippets_by_split.values())),
        splits={split: split_stats(s, pipeline) for split, s in snippets_by_split.items()},
        unknown_chars=unknown,
        pipeline=repr(pipeline),
    )


def format_stats(stats: DatasetStats, most_common: int = 10) -> str:
    lines = [f"clients: {stats.clients}"]
    for split, s in stats.splits.items():
        lines += [
            f"{split}: {s.clients} clients, {s.examples} examples",
            f"  characters per client: min {s.chars_min}, median {s.chars_median:g}, "
            f"max {s.chars_max}",
            f"  empty clients (zero batches): {s.empty_clients} of {s.clients}",
        ]
    total = sum(stats.unknown_chars.values())
    common = ", ".join(f"{c!r}: {n}" for c, n in stats.unknown_chars.most_common(most_common))
    lines.append(f"unknown characters: {total}" + (f" ({common})" if total else ""))
    lines.append(f"pipeline: {stats.pipeline}")
    return "\n".join(lines)
