"""The per-client pipeline by name: ``tutorial`` (fedlm/data/preprocess.py) or ``paper``
(fedlm/data/paper.py, TFF's Shakespeare baseline). Both offer ``train``, ``evaluate``,
``num_batches``, ``vocab_size``, ``ignore_id`` and ``loss_ignore_id``."""

from __future__ import annotations

from fedlm.config import PIPELINES
from fedlm.errors import ConfigError


def check_options(
    name: str, unknown_chars: str | None = None, pad: bool = False, loss_on_padding: bool = False
) -> None:
    """Raise :class:`ConfigError` for ``data.*`` options that the pipeline ``name`` does not take
    (no TensorFlow: ``fedlm-train`` checks them before importing it)."""
    if name not in PIPELINES:
        raise ConfigError("data.pipeline", name, PIPELINES)
    if name == "paper" and pad:
        raise ConfigError("data.pad", pad, "false with the 'paper' pipeline (it pads itself)")
    if name != "paper" and loss_on_padding:
        raise ConfigError(
            "data.loss_on_padding",
            loss_on_padding,
            "false unless data.pipeline=paper (only the papers' pipeline has padding targets; the "
            "tutorial's padded positions are never counted)",
        )
    if name == "paper" and unknown_chars not in (None, "oov"):
        raise ConfigError(
            "data.unknown_chars", unknown_chars, "null or 'oov' with data.pipeline=paper"
        )


def build_pipeline(
    name: str = "tutorial",
    seq_len: int = 100,
    batch_size: int = 8,
    shuffle_buffer: int | None = None,
    unknown_chars: str | None = None,
    pad: bool = False,
    loss_on_padding: bool = False,
):
    """The pipeline ``name``; ``unknown_chars=None`` and ``shuffle_buffer=None`` take its own."""
    check_options(name, unknown_chars, pad, loss_on_padding)
    if name == "tutorial":
        from fedlm.data.preprocess import TutorialPipeline

        return TutorialPipeline(
            seq_len=seq_len,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer or TutorialPipeline.shuffle_buffer,
            unknown_chars=unknown_chars or "drop",
            pad=pad,
        )
    if name == "paper":
        from fedlm.data.paper import DEFAULT_SHUFFLE_BUFFER, PaperPipeline

        return PaperPipeline(
            seq_len=seq_len,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer or DEFAULT_SHUFFLE_BUFFER,
            loss_on_padding=loss_on_padding,
        )
