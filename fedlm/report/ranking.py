"""The methods' ranking by the study's statistic beside the paper's ranking by its numbers.

Only rows comparable with a paper number are ranked (a method the paper has, run with the paper's
settings), each by the mean over its seeds of the study's statistic of the study's metric: the
mean over the last rounds (``mean_last``), the final value (``final``), or the first round at the
target (``first_at_target``, fewer is better). Rank 1 is the best; equal values share a rank. A
row without a value yet (an unfinished run) has no rank. How far the two orders agree is counted
in pairs: of the pairs of ranked methods, how many the paper orders the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from fedlm.report.run_statistics import higher_is_better
from fedlm.report.study import PaperNumber, Study
from fedlm.report.summary import Row


@dataclass(frozen=True)
class Placing:
    row: Row
    paper: PaperNumber
    value: float | None  # the row's statistic, mean over its seeds (None: none yet)
    rank: int | None  # 1: the best; None: no value
    paper_rank: int


def statistic_of(study: Study) -> tuple[str, bool]:
    """The statistic the ranking uses (a Row key) and whether higher is better."""
    if study.statistic == "first_at_target":
        return "rounds_to_target", False
    key = "mean_last" if study.statistic == "mean_last" else "final"
    return key, higher_is_better(study.metric)


def ranks(values: Sequence[float | None], higher_better: bool) -> list[int | None]:
    """Competition ranks (1, 2, 2, 4) of ``values``; None for a missing value."""
    sign = -1.0 if higher_better else 1.0
    present = [sign * v for v in values if v is not None]
    return [None if v is None else 1 + sum(p < sign * v for p in present) for v in values]


def ranking(rows: Sequence[Row], study: Study) -> list[Placing]:
    """The rows comparable with a paper number, in the paper's order (its best first)."""
    key, higher_better = statistic_of(study)
    ranked = [row for row in rows if row.comparable and study.metric in row.metrics]
    values = [row.mean_std(key, study.metric)[0] for row in ranked]
    ours = ranks(values, higher_better)
    theirs = ranks([row.paper.value for row in ranked], higher_better)
    placings = [
        Placing(row, row.paper, value, rank, paper_rank)
        for row, value, rank, paper_rank in zip(ranked, values, ours, theirs, strict=True)
    ]
    return sorted(placings, key=lambda p: (p.paper_rank, p.row.group.label))


def pairs_in_order(placings: Sequence[Placing]) -> tuple[int, int]:
    """(pairs ordered as the paper orders them, pairs compared) among the ranked methods; a pair
    the paper ties, or fedlm ties, is compared and not in order unless both tie."""
    ranked = [p for p in placings if p.rank is not None]
    pairs = list(itertools.combinations(ranked, 2))
    same = sum(sign(a.rank - b.rank) == sign(a.paper_rank - b.paper_rank) for a, b in pairs)
    return same, len(pairs)


def sign(number: int) -> int:
    return (number > 0) - (number < 0)


def order(placings: Sequence[Placing], paper: bool = False) -> str:
    """The methods from the best, by fedlm's ranks (or the paper's): "A > B = C"; the unranked
    left out."""
    rank_of = (lambda p: p.paper_rank) if paper else (lambda p: p.rank)
    ranked = sorted((p for p in placings if rank_of(p) is not None), key=rank_of)
    groups = itertools.groupby(ranked, key=rank_of)
    return " > ".join(" = ".join(p.paper.label for p in group) for _, group in groups)
