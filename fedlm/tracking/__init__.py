"""Experiment tracking: the tracker the round loop talks to, checkpoints and resume."""

from fedlm.config import TrainConfig
from fedlm.errors import ConfigError
from fedlm.tracking.base import Checkpoint, Tracker

__all__ = ["Checkpoint", "Tracker", "build_tracker"]


def build_tracker(cfg: TrainConfig, context: dict | None = None) -> Tracker:
    """The tracker ``cfg.tracking`` asks for: MLflow, or the do-nothing one when tracking is off.

    ``context`` holds what Hydra knows about the job (mode, output and sweep dirs, job number,
    overrides), recorded as tags.
    """
    if not cfg.tracking.enabled:
        if cfg.resume is not False:
            raise ConfigError(
                "resume", cfg.resume, "false when tracking.enabled=false (no checkpoints to resume)"
            )
        return Tracker()
    from fedlm.tracking.mlflow_tracker import MlflowTracker  # MLflow loads only when it is used

    return MlflowTracker(cfg, context)
