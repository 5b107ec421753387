"""Hydra callbacks (wired in ``conf/hydra/callbacks/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def swept_keys(overrides: list[str], sweeper_params: Any = None) -> list[str]:
    """The keys a multirun sweeps: its command-line sweeps (``lr=0.1,0.2``, ``range(...)``,
    ``choice(...)``), then the config's ``hydra.sweeper.params`` (a study's own sweep) that the
    command line does not fix to one value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [o.get_key_element() for o in parsed if o.is_sweep_override()]
    fixed = {o.get_key_element() for o in parsed if not o.is_sweep_override()}
    for key in sweeper_params or {}:
        if key not in keys and key not in fixed:
            keys.append(key)
    return keys


class MlflowSweepCallback(Callback):
    """Before a multirun's jobs: the store, the experiment and the sweep's parent run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        from fedlm.tracking.sweeps import start_sweep

        overrides = list(config.hydra.overrides.task)
        start_sweep(
            tracking.uri,
            tracking.experiment_name,
            str(Path(config.hydra.sweep.dir).resolve()),
            overrides,
            swept_keys(overrides, OmegaConf.select(config, "hydra.sweeper.params")),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        from fedlm.tracking.sweeps import end_sweep

        end_sweep(
            tracking.uri, tracking.experiment_name, str(Path(config.hydra.sweep.dir).resolve())
        )
