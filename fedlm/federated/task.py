"""A task: the data pipeline and the model that fit together, with their loss and metrics.

The pipeline decides the vocabulary (86 for the tutorial's, 87 with a reserved oov id, 90 for the
papers'), which targets are left out of loss and metrics (padding), and whether the embedding
masks padding; the model config decides the rest. Nothing here is set twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from fedlm.config import DataConfig, ModelConfig, TrainingConfig
from fedlm.data import pipelines
from fedlm.federated.process import ModelFn, build_model_fn
from fedlm.models.architectures import build_model
from fedlm.models.metrics import CharacterAccuracy, NumTokens, loss_fn


def build_pipeline(data: DataConfig, training: TrainingConfig):
    """The per-client preprocessing that ``data.pipeline`` names, with the training sizes."""
    return pipelines.build_pipeline(
        data.pipeline,
        seq_len=training.seq_len,
        batch_size=training.batch_size,
        shuffle_buffer=training.shuffle_buffer,
        unknown_chars=data.unknown_chars,
        pad=data.pad,
        loss_on_padding=data.loss_on_padding,
    )


@dataclass(frozen=True)
class Task:
    pipeline: object
    model: ModelConfig

    @property
    def vocab_size(self) -> int:
        return self.pipeline.vocab_size

    @property
    def mask_zero(self) -> bool:
        # The papers' pipeline pads with id 0, which the embedding masks (TFF's baseline model).
        return self.pipeline.name == "paper"

    @property
    def char_id_offset(self) -> int:
        """The model id of the vocabulary's first character (the papers' ids keep 0 for padding)."""
        return 1 if self.pipeline.name == "paper" else 0

    def keras_model(
        self, batch_size: int | None = None, stateful: bool = False, fixed_length: bool = False
    ) -> tf.keras.Model:
        """The model; ``fixed_length``: for the pipeline's sequences only (training and
        evaluation), its time dimension fixed at ``seq_len`` and unrolled if ``model.unroll``."""
        return build_model(
            self.model,
            self.vocab_size,
            batch_size=batch_size,
            stateful=stateful,
            mask_zero=self.mask_zero,
            seq_len=self.pipeline.seq_len if fixed_length else None,
        )

    def sequence_model(self) -> tf.keras.Model:
        """The training and evaluation model: the pipeline's fixed-length sequences."""
        return self.keras_model(fixed_length=True)

    def loss(self) -> tf.keras.losses.Loss:
        return loss_fn(self.pipeline.loss_ignore_id)

    def metrics(self) -> list[tf.keras.metrics.Metric]:
        ignore = (self.pipeline.ignore_id,)
        metrics = [CharacterAccuracy("accuracy", ignore_ids=ignore)]
        if self.pipeline.name == "paper":
            from fedlm.data.paper import MASKED_FOR_ACCURACY_NO_EOS_OOV

            metrics.append(
                CharacterAccuracy("accuracy_no_eos_oov", ignore_ids=MASKED_FOR_ACCURACY_NO_EOS_OOV)
            )
        metrics.append(NumTokens("num_tokens", ignore_ids=ignore))
        return metrics

    def compiled_keras_model(self, batch_size: int | None = None) -> tf.keras.Model:
        model = self.keras_model(batch_size, fixed_length=True)
        model.compile(loss=self.loss(), metrics=self.metrics())
        return model

    def model_fn(self, element_spec) -> ModelFn:
        return build_model_fn(self.sequence_model, element_spec, self.loss, self.metrics)
