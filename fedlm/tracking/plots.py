"""Learning curves (loss and accuracy against round, training and evaluation) as PNG files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

# A bare Figure (no pyplot): no display needed, and no global backend switched under a notebook.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# (file name, y label, metric suffix): every series "<split>/<suffix>" goes on one plot.
CURVES = (("loss.png", "loss", "loss"), ("accuracy.png", "accuracy", "accuracy"))


def plot_learning_curves(
    history: Mapping[str, Sequence[tuple[int, float]]], folder: str | Path
) -> list[Path]:
    """Write one PNG per quantity with its train/eval series; return the files written.

    ``history`` maps a metric key (``train/loss``, ``eval/loss``, ``fed_eval/loss``...) to its
    (round, value) points. A quantity with no series gets no file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, label, suffix in CURVES:
        series = {k: v for k, v in sorted(history.items()) if k.endswith(f"/{suffix}") and v}
        if not series:
            continue
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.subplots()
        for key, points in series.items():
            rounds, values = zip(*sorted(points), strict=True)
            ax.plot(rounds, values, marker="o", markersize=3, label=key.split("/")[0])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / file_name)
        written.append(folder / file_name)
    return written
