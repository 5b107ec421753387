import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_federated.python.simulation.baselines import keras_metrics as tff_metrics

from fedlm import vocab
from fedlm.data import paper
from fedlm.data.paper import PaperPipeline
from fedlm.errors import ConfigError
from fedlm.models.metrics import CharacterAccuracy, NumTokens, loss_fn

SYNTHETIC = tff.simulation.datasets.shakespeare.get_synthetic()
# The client with six snippets of 5 to 21 characters (TFF's synthetic Shakespeare).
CLIENT = "THE_TRAGEDY_OF_KING_LEAR_MACBETH"


def client_dataset(client_id: str = CLIENT) -> tf.data.Dataset:
    return SYNTHETIC.create_tf_dataset_for_client(client_id)


def snippets_dataset(snippets: list[str]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices({"snippets": tf.constant(snippets, tf.string)})


def batches(dataset: tf.data.Dataset) -> list[tuple[list, list]]:
    return [(x.numpy().tolist(), y.numpy().tolist()) for x, y in dataset]


def tff_task(train_spec, eval_spec, seq_len):
    return tff.simulation.baselines.shakespeare.create_character_prediction_task(
        train_spec, eval_spec, sequence_length=seq_len, use_synthetic_data=True
    )


def test_special_tokens_and_vocabulary_are_tffs():
    assert (paper.PAD, paper.OOV, paper.BOS, paper.EOS) == (0, 87, 88, 89)
    assert paper.VOCAB_SIZE == 90
    assert paper.CHARS == vocab.CHARS
    pipeline = PaperPipeline()
    assert (pipeline.name, pipeline.vocab_size, pipeline.ignore_id) == ("paper", 90, 0)
    assert (pipeline.seq_len, pipeline.batch_size, pipeline.shuffle_buffer) == (80, 4, 50)
    assert paper.MASKED_FOR_ACCURACY == (0,)
    assert paper.MASKED_FOR_ACCURACY_NO_EOS_OOV == (0, 89, 87)


@pytest.mark.parametrize("max_elements, max_batches", [(None, None), (7, 3)])
def test_train_batches_equal_tff_baseline_task_under_the_same_seed(max_elements, max_batches):
    pipeline = PaperPipeline(seq_len=5, batch_size=3, shuffle_buffer=4, max_elements=max_elements)
    spec = tff.simulation.baselines.ClientSpec(
        num_epochs=2, batch_size=3, max_elements=max_elements, shuffle_buffer_size=4
    )
    task = tff_task(spec, None, seq_len=5)

    tf.random.set_seed(7)
    expected = task.datasets.train_preprocess_fn(client_dataset())
    if max_batches is not None:
        expected = expected.take(max_batches)
    expected = batches(expected)
    actual = batches(
        pipeline.train(client_dataset(), local_epochs=2, max_batches=max_batches, seed=7)
    )

    assert actual == expected
    assert len(actual) == (3 if max_batches else math.ceil(2 * 20 / 3))
    # The seed matters (the equality above is not that of two unshuffled pipelines) and repeats.
    assert batches(pipeline.train(client_dataset(), 2, max_batches, seed=8)) != expected
    assert batches(pipeline.train(client_dataset(), 2, max_batches, seed=7)) == expected


def test_eval_batches_equal_tff_baseline_task():
    pipeline = PaperPipeline(seq_len=5, batch_size=3)
    eval_spec = tff.simulation.baselines.ClientSpec(
        num_epochs=1, batch_size=3, shuffle_buffer_size=1
    )
    task = tff_task(tff.simulation.baselines.ClientSpec(1, 3), eval_spec, seq_len=5)
    for client_id in SYNTHETIC.client_ids:
        expected = batches(task.datasets.eval_preprocess_fn(client_dataset(client_id)))
        assert batches(pipeline.evaluate(client_dataset(client_id))) == expected
    expected = batches(task.datasets.eval_preprocess_fn(client_dataset()).take(2))
    assert batches(pipeline.evaluate(client_dataset(), max_batches=2)) == expected
    assert pipeline.evaluate(client_dataset()).element_spec == (
        tf.TensorSpec([None, 5], tf.int64),
        tf.TensorSpec([None, 5], tf.int64),
    )


def test_token_ids_of_hand_made_snippets():
    # 'd' and 'h' are characters 0 and 1 of the vocabulary, ids 1 and 2; 'a' is 63 -> 64,
    # ' ' is 13 -> 14; 'é' is two UTF-8 bytes, each out of the vocabulary -> 87, 87.
    pipeline = PaperPipeline(seq_len=4, batch_size=2)
    out = batches(pipeline.evaluate(snippets_dataset(["dh", "a é"])))
    # "dh"  -> [88, 1, 2, 89] + one pad           = one chunk of 5
    # "a é" -> [88, 64, 14, 87, 87, 89] + four pads = two chunks of 5
    assert out == [
        ([[88, 1, 2, 89], [88, 64, 14, 87]], [[1, 2, 89, 0], [64, 14, 87, 87]]),
        ([[89, 0, 0, 0]], [[0, 0, 0, 0]]),
    ]


def hand_made_clients() -> dict[str, list[str]]:
    clients = {
        client_id: [x["snippets"].numpy().decode() for x in client_dataset(client_id)]
        for client_id in SYNTHETIC.client_ids
    }
    clients["non_ascii"] = ["Ça va? — oui", "", "x" * 23]
    return clients


@pytest.mark.parametrize("seq_len, batch_size", [(1, 1), (4, 2), (5, 3), (10, 4), (80, 4)])
def test_counts_match_the_real_pipeline(seq_len, batch_size):
    pipeline = PaperPipeline(seq_len=seq_len, batch_size=batch_size)
    for snippets in hand_made_clients().values():
        out = batches(pipeline.evaluate(snippets_dataset(snippets)))
        assert pipeline.num_batches(snippets) == len(out)
        assert pipeline.num_sequences(snippets) == sum(len(x) for x, _ in out)
        assert pipeline.num_tokens(snippets) == int(
            np.sum(np.array([t for _, y in out for row in y for t in row]) != paper.PAD)
        )
        assert len(batches(pipeline.train(snippets_dataset(snippets), seed=1))) == len(out)
    assert pipeline.num_batches([]) == 0


def test_local_epochs_are_chunked_together():
    # Snippets of 5, 5, 18, 20, 21, 21 characters + bos + eos, in chunks of 6: 2+2+4+4+4+4 = 20.
    # In batches of 6: 4 batches for one epoch, and 7 (not 8) for two.
    pipeline = PaperPipeline(seq_len=5, batch_size=6)
    snippets = [x["snippets"].numpy() for x in client_dataset()]
    assert pipeline.num_sequences(snippets) == 20
    assert pipeline.num_batches(snippets) == 4
    assert len(batches(pipeline.train(client_dataset(), local_epochs=2, seed=0))) == 7


def hand_made_batch() -> tuple[tf.Tensor, tf.Tensor]:
    y_true = tf.constant([[5, 89, 0, 0], [87, 6, 7, 0]], tf.int64)
    predicted = [[5, 3, 0, 7], [87, 2, 7, 0]]  # argmax of the logits below
    logits = tf.one_hot(predicted, paper.VOCAB_SIZE) * 5.0
    return y_true, logits


def accuracy(metric, y_true, logits) -> float:
    metric.update_state(y_true, logits)
    return float(metric.result())


def test_masked_accuracy_equals_tffs_and_the_hand_count():
    y_true, logits = hand_made_batch()
    # Not padding: 5 right, 89 wrong, 87 right, 6 wrong, 7 right -> 3 of 5.
    ours = accuracy(CharacterAccuracy(ignore_ids=paper.MASKED_FOR_ACCURACY), y_true, logits)
    tffs = accuracy(
        tff_metrics.MaskedCategoricalAccuracy(masked_tokens=[paper.PAD]), y_true, logits
    )
    assert ours == tffs == pytest.approx(3 / 5)
    # Neither padding nor eos nor oov: 5 right, 6 wrong, 7 right -> 2 of 3.
    strict = CharacterAccuracy(ignore_ids=paper.MASKED_FOR_ACCURACY_NO_EOS_OOV)
    assert accuracy(strict, y_true, logits) == pytest.approx(2 / 3)
    # Padding counted as well: the pads predicted as 0 are right twice -> 5 of 8.
    assert accuracy(CharacterAccuracy(), y_true, logits) == pytest.approx(5 / 8)

    num_tokens = NumTokens(ignore_ids=paper.MASKED_FOR_ACCURACY)
    num_tokens.update_state(y_true, logits)
    tff_num_tokens = tff_metrics.NumTokensCounter(masked_tokens=[paper.PAD])
    tff_num_tokens.update_state(y_true, logits)
    assert int(num_tokens.result()) == int(tff_num_tokens.result()) == 5


def test_tff_baseline_loss_does_not_mask_padding():
    # The claim behind fedlm's ignore_class=PAD: TFF's baseline model averages the loss over
    # every position, padding targets included.
    seq_len = 4
    task = tff_task(tff.simulation.baselines.ClientSpec(1, 2), None, seq_len=seq_len)
    model = task.model_fn()
    x = tf.constant([[88, 1, 2, 89], [89, 0, 0, 0]], tf.int64)
    y = tf.constant([[1, 2, 89, 0], [0, 0, 0, 0]], tf.int64)
    tff_loss = float(model.forward_pass((x, y), training=False).loss)

    logits = model.predict_on_batch(x, training=False)
    per_position = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    assert tff_loss == pytest.approx(float(tf.reduce_mean(per_position)), rel=1e-5)
    masked = float(tf.reduce_sum(per_position[0, :3]) / 3)
    assert float(loss_fn(paper.PAD)(y, logits)) == pytest.approx(masked, rel=1e-5)


@pytest.mark.parametrize("loss_on_padding", [False, True])
def test_fedlms_loss_leaves_padding_targets_out_unless_asked_to_count_them_as_tffs(loss_on_padding):
    from fedlm.config import ModelConfig
    from fedlm.data.pipelines import build_pipeline
    from fedlm.federated.task import Task

    pipeline = build_pipeline("paper", seq_len=4, batch_size=2, loss_on_padding=loss_on_padding)
    task = Task(pipeline, ModelConfig(name="tiny", cell="lstm", embedding_dim=4, units=8))
    x = tf.constant([[88, 1, 2, 89], [89, 0, 0, 0]], tf.int64)
    y = tf.constant([[1, 2, 89, 0], [0, 0, 0, 0]], tf.int64)
    spec = (tf.TensorSpec([None, 4], tf.int64), tf.TensorSpec([None, 4], tf.int64))
    model = task.model_fn(spec)()  # the TFF model fedlm trains
    loss = float(model.forward_pass((x, y), training=False).loss)
    logits = model.predict_on_batch(x, training=False)
    per_position = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    if loss_on_padding:  # every position, as TFF's baseline task (the test above)
        assert loss == pytest.approx(float(tf.reduce_mean(per_position)), rel=1e-5)
    else:  # the 3 targets that are not padding
        assert loss == pytest.approx(float(tf.reduce_sum(per_position[0, :3]) / 3), rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"seq_len": 0}, "training.seq_len"),
        ({"batch_size": 2.0}, "training.batch_size"),
        ({"shuffle_buffer": 0}, "training.shuffle_buffer"),
        ({"max_elements": 0}, "training.max_elements"),
    ],
)
def test_bad_sizes_name_their_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        PaperPipeline(**kwargs)


def test_bad_epochs_and_caps_name_their_key():
    with pytest.raises(ConfigError, match="training.local_epochs"):
        PaperPipeline().train(client_dataset(), local_epochs=0)
    with pytest.raises(ConfigError, match="eval.max_batches"):
        PaperPipeline().evaluate(client_dataset(), max_batches=0)
