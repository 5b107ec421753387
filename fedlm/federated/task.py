"""A task: the data pipeline and the model that fit together, with their loss and metrics.

The pipeline decides the vocabulary (86 for the tutorial's, 87 with a reserved oov id, 90 for the
papers'), which targets are left out of loss and metrics (padding), and whether the embedding
masks padding; the model config decides the rest. Nothing here is set twice. TFF sees the model
through :meth:`Task.model_fn` (TFF's ``from_keras_model``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import DataConfig, ModelConfig, TrainingConfig
from fedlm.data import pipelines
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


ModelFn = Callable[[], tff.learning.models.VariableModel]


def build_model_fn(
    keras_model_fn: Callable[[], tf.keras.Model],
    element_spec,
    loss_fn: Callable[[], tf.keras.losses.Loss],
    metrics_fn: Callable[[], Sequence[tf.keras.metrics.Metric]],
) -> ModelFn:
    """TFF's model function: a fresh Keras model wrapped by TFF's ``from_keras_model``."""

    def model_fn():
        return tff.learning.models.from_keras_model(
            keras_model_fn(), input_spec=element_spec, loss=loss_fn(), metrics=list(metrics_fn())
        )

    return model_fn


class TokenWeightedModel(tff.learning.models.VariableModel):
    """A TFF model whose batches count their non-padding targets as their examples.

    TFF 0.87's FedAvg and FedProx take only the ``ClientWeighting`` enum (no weight function), and
    weigh by the ``num_examples`` the model's ``forward_pass`` reports: reporting tokens there
    weighs clients by tokens, as TFF's Shakespeare baseline and the papers do. The metrics
    (``num_examples`` included) are the wrapped model's own, unchanged.
    """

    def __init__(self, model: tff.learning.models.VariableModel, ignore_id: int):
        self._model = model
        self._ignore_id = ignore_id

    @property
    def trainable_variables(self):
        return self._model.trainable_variables

    @property
    def non_trainable_variables(self):
        return self._model.non_trainable_variables

    @property
    def local_variables(self):
        return self._model.local_variables

    @property
    def input_spec(self):
        return self._model.input_spec

    def forward_pass(self, batch_input, training=True):
        output = self._model.forward_pass(batch_input, training=training)
        targets = batch_input[1]
        tokens = tf.reduce_sum(tf.cast(tf.not_equal(targets, self._ignore_id), tf.int32))
        return tff.learning.models.BatchOutput(
            loss=output.loss, predictions=output.predictions, num_examples=tokens
        )

    def predict_on_batch(self, batch_input, training=True):
        return self._model.predict_on_batch(batch_input, training=training)

    def report_local_unfinalized_metrics(self):
        return self._model.report_local_unfinalized_metrics()

    def metric_finalizers(self):
        return self._model.metric_finalizers()

    def reset_metrics(self):
        return self._model.reset_metrics()


@dataclass(frozen=True)
class Task:
    pipeline: object
    model: ModelConfig

    @property
    def vocab_size(self) -> int:
        return self.pipeline.vocab_size

    @property
    def kind(self) -> pipelines.PipelineKind:
        """How the pipeline differs from the others (:data:`fedlm.data.pipelines.PIPELINES`)."""
        return pipelines.PIPELINES[self.pipeline.name]

    @property
    def mask_zero(self) -> bool:
        # A pipeline that pads itself pads with id 0, which the embedding masks (TFF's baseline).
        return self.kind.pads_itself

    @property
    def char_id_offset(self) -> int:
        """The model id of the vocabulary's first character (the papers' ids keep 0 for padding)."""
        return self.kind.char_id_offset

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
        if "accuracy_no_eos_oov" in self.kind.metrics:
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
