"""What the round loop tells the tracking layer, and the tracker that does nothing (tracking off).

The loop never asks whether tracking is on: it talks to a tracker, and ``tracking.enabled=false``
gives it this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Checkpoint:
    """Everything a resumed run needs to go on exactly as an uninterrupted one would."""

    round_num: int
    server_state: Any  # the TFF learning process state (model weights, server optimizer state)
    sampler_state: Mapping[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """The do-nothing tracker; ``fedlm.tracking.mlflow_tracker`` records everything instead."""

    run_id: str | None = None

    def claim(self) -> bool:
        """Before any TensorFlow work: find the run, and take it for this process (one writer
        per run). False when there is nothing to do (a resume of a run that finished)."""
        return True

    def start(self, config: Mapping[str, Any]) -> None:
        """Begin (or, when resuming, re-open) the run; ``config`` is the resolved config."""

    def restore(self, template_state: Any) -> Checkpoint | None:
        """The last checkpoint to resume from, with a state shaped like ``template_state``."""
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_text(self, name: str, text: str, step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Record ``tags`` on the run (a value set again replaces the old one)."""

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        pass

    def log_model(self, keras_model: Any, step: int | None = None) -> None:
        """Log the final model, with the run's metrics at ``step`` (the last round)."""

    def finish(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED or KILLED."""

    def where(self) -> str | None:
        """A line telling the user where to look at the run, or None."""
        return None
