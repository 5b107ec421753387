"""The per-client pipeline by name: ``tutorial`` (fedlm/data/preprocess.py) or ``paper``
(fedlm/data/paper.py, TFF's Shakespeare baseline). Both offer ``train``, ``evaluate``,
``num_batches``, ``vocab_size``, ``ignore_id`` and ``loss_ignore_id``.

:data:`PIPELINES` says how they differ without importing them (they import TensorFlow), so that
``fedlm-train`` checks the ``data.*`` options in a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fedlm.config import DataConfig
from fedlm.data import sizes
from fedlm.errors import ConfigError
from fedlm.vocab import UNKNOWN_POLICIES


def _tutorial(seq_len, batch_size, shuffle_buffer, unknown_chars, pad, loss_on_padding):
    from fedlm.data.preprocess import TutorialPipeline

    return TutorialPipeline(
        seq_len=seq_len,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer or TutorialPipeline.shuffle_buffer,
        unknown_chars=unknown_chars or "drop",
        pad=pad,
    )


def _paper(seq_len, batch_size, shuffle_buffer, unknown_chars, pad, loss_on_padding):
    from fedlm.data.paper import DEFAULT_SHUFFLE_BUFFER, PaperPipeline

    return PaperPipeline(
        seq_len=seq_len,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer or DEFAULT_SHUFFLE_BUFFER,
        loss_on_padding=loss_on_padding,
    )


def _tutorial_batches(snippets, seq_len, batch_size, unknown_chars, pad) -> int:
    return sizes.tutorial_batches(snippets, seq_len, batch_size, unknown_chars or "drop", pad)


def _paper_batches(snippets, seq_len, batch_size, unknown_chars, pad) -> int:
    return sizes.paper_batches(snippets, seq_len, batch_size)


@dataclass(frozen=True)
class PipelineKind:
    """A pipeline as the config checks and the task see it."""

    build: Callable[..., Any]
    # Batches one epoch of a client's snippets yields, before any cap, in pure Python:
    # (snippets, seq_len, batch_size, unknown_chars, pad) -> int (fedlm/data/sizes.py)
    count_batches: Callable[..., int]
    # Pads every sequence itself with id 0, which the model's embedding masks (TFF's baseline):
    # data.pad is refused; its padding targets are what data.loss_on_padding counts.
    pads_itself: bool
    unknown_chars: tuple[str | None, ...]  # the data.unknown_chars it takes (null: its own)
    char_id_offset: int  # the model id of the vocabulary's first character
    metrics: tuple[str, ...] = ()  # logged beside accuracy; training.stop_at may name them
    pretrain_args: str = ""  # what `fedlm-pretrain` needs for a model that starts such a run
    # The name `fedlm-pretrain` gives that model: <model.name><suffix>.h5, beside the tutorial
    # pipeline's (another vocabulary)
    pretrained_suffix: str = ""


PIPELINES = {
    "tutorial": PipelineKind(
        _tutorial, _tutorial_batches, False, (None, *UNKNOWN_POLICIES), char_id_offset=0
    ),
    "paper": PipelineKind(
        _paper,
        _paper_batches,
        True,
        (None, "oov"),
        char_id_offset=1,
        metrics=("accuracy_no_eos_oov",),
        pretrain_args=" pipeline=paper seq_len=80",
        pretrained_suffix="_paper",
    ),
}


@dataclass(frozen=True)
class BatchCounter:
    """Counts a client's batches as the pipeline named ``pipeline`` would make them, without
    building it (no TensorFlow)."""

    pipeline: str = "tutorial"
    seq_len: int = 100
    batch_size: int = 8
    unknown_chars: str | None = None  # None: the pipeline's own (tutorial: drop)
    pad: bool = False

    def num_batches(self, snippets: Sequence[str]) -> int:
        count = PIPELINES[self.pipeline].count_batches
        return count(snippets, self.seq_len, self.batch_size, self.unknown_chars, self.pad)


def check_options(
    name: str, unknown_chars: str | None = None, pad: bool = False, loss_on_padding: bool = False
) -> None:
    """Raise :class:`ConfigError` for ``data.*`` options that the pipeline ``name`` does not take
    (no TensorFlow: ``fedlm-train`` checks them before importing it)."""
    if name not in PIPELINES:
        raise ConfigError("data.pipeline", name, PIPELINES)
    pipeline = PIPELINES[name]
    if pipeline.pads_itself and pad:
        raise ConfigError("data.pad", pad, f"false with the {name!r} pipeline (it pads itself)")
    if not pipeline.pads_itself and loss_on_padding:
        padding = "|".join(n for n, p in PIPELINES.items() if p.pads_itself)
        raise ConfigError(
            "data.loss_on_padding",
            loss_on_padding,
            f"false unless data.pipeline={padding} (only the papers' pipeline has padding "
            "targets; the tutorial's padded positions are never counted)",
        )
    if unknown_chars not in pipeline.unknown_chars:
        taken = " or ".join("null" if u is None else repr(u) for u in pipeline.unknown_chars)
        raise ConfigError("data.unknown_chars", unknown_chars, f"{taken} with data.pipeline={name}")


def check_pipeline(data: DataConfig) -> None:
    """``data.pipeline`` and the options it takes."""
    check_options(data.pipeline, data.unknown_chars, data.pad, data.loss_on_padding)


def build_pipeline(
    name: str = "tutorial",
    seq_len: int = 100,
    batch_size: int = 8,
    shuffle_buffer: int | None = None,
    unknown_chars: str | None = None,
    pad: bool = False,
    loss_on_padding: bool = False,
):
    """The pipeline ``name``; ``unknown_chars=None`` and ``shuffle_buffer=None`` take its own.

    Its options are checked here too: ``fedlm-data stats`` builds one without a config."""
    check_options(name, unknown_chars, pad, loss_on_padding)
    build = PIPELINES[name].build
    return build(seq_len, batch_size, shuffle_buffer, unknown_chars, pad, loss_on_padding)
