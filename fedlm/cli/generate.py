"""``uv run fedlm-generate``: sample text from a saved model or a training run's checkpoint
(conf/generate.yaml)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fedlm.cli.common import CONFIG_DIR, register_resolvers, report_errors, run_hydra
from fedlm.config import GenerateConfig, check_keys

register_resolvers()
ConfigStore.instance().store(name="generate_schema", node=GenerateConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
@report_errors("fedlm-generate")
def _main(cfg: DictConfig) -> None:
    check_keys(OmegaConf.to_container(cfg, resolve=False), GenerateConfig)  # `+key=` included
    from fedlm.data.paper import VOCAB_SIZE as PAPER_VOCAB_SIZE
    from fedlm.models.generate import (
        check_prompt,
        check_sampling,
        generate_text,
        load_weights_for_generation,
    )
    from fedlm.models.pretrained import check_weights
    from fedlm.tracking.checkpoints import checkpoint_model_weights, find_checkpoint

    cfg: GenerateConfig = OmegaConf.to_object(cfg)
    check_prompt(cfg.prompt)  # before loading anything
    check_sampling(cfg.length, cfg.temperature, cfg.top_k)
    checkpoint = find_checkpoint(cfg.model.pretrained) if cfg.model.pretrained else None
    if checkpoint is not None:  # a training run's output dir or checkpoint
        weights, round_num = checkpoint_model_weights(checkpoint)
        vocab_size = cfg.vocab_size or int(weights[0].shape[0])
        check_weights(weights, cfg.model, vocab_size, source=f"checkpoint {checkpoint}")
        print(f"weights of round {round_num} from {checkpoint}", file=sys.stderr)
    else:
        weights = load_weights_for_generation(cfg.model.pretrained, cfg.model, cfg.vocab_size)
        vocab_size = cfg.vocab_size or int(weights[0].shape[0])
    print(
        generate_text(
            weights,
            cfg.model,
            vocab_size,
            cfg.prompt,
            cfg.length,
            cfg.temperature,
            cfg.top_k,
            cfg.seed,
            # A model on the papers' ids (0 = padding) samples characters from id 1 on.
            id_offset=1 if vocab_size == PAPER_VOCAB_SIZE else 0,
        )
    )


def main() -> None:
    run_hydra("fedlm-generate", _main)


if __name__ == "__main__":
    main()
