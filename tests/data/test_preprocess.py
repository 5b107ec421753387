import pytest
import tensorflow as tf

from fedlm import vocab
from fedlm.data.preprocess import TutorialPipeline
from fedlm.errors import ConfigError


def _dataset(snippets):
    return tf.data.Dataset.from_tensor_slices({"snippets": tf.constant(snippets, tf.string)})


def _ids(text, policy="drop"):
    return vocab.encode(text, policy)


def _batches(dataset):
    return [(x.numpy().tolist(), y.numpy().tolist()) for x, y in dataset]


@pytest.mark.parametrize("policy", vocab.UNKNOWN_POLICIES)
def test_to_ids_gives_one_id_per_character_like_vocab_encode(policy):
    snippets = ["Caf\u00e9 {na\u00efve}", "", "ab\u2014c"]
    pipeline = TutorialPipeline(unknown_chars=policy)

    ids = [x.numpy().tolist() for x in pipeline.to_ids(_dataset(snippets))]

    assert ids == [vocab.encode(s, policy) for s in snippets]


def test_sequences_and_batches_follow_the_tutorial():
    pipeline = TutorialPipeline(seq_len=4, batch_size=1)
    # Snippets are joined before cutting: 12 characters make two 5-character sequences.
    data = _dataset(["abcdefg", "hijkl"])

    assert _batches(pipeline.evaluate(data)) == [
        ([_ids("abcd")], [_ids("bcde")]),
        ([_ids("fghi")], [_ids("ghij")]),
    ]


def test_padding_keeps_the_remainder_and_masks_it():
    pipeline = TutorialPipeline(seq_len=4, batch_size=2, pad=True)
    ignore = vocab.IGNORE_ID

    batches = _batches(pipeline.evaluate(_dataset(["abcdefg"])))

    # "abcde" and "fg" + 3 pads; one batch of two. Padded inputs read as id 0.
    assert batches == [
        (
            [_ids("abcd"), _ids("fg") + [0, 0]],
            [_ids("bcde"), _ids("g") + [ignore] * 3],
        )
    ]
    # A partial batch is filled with all-padding sequences.
    batches = _batches(pipeline.evaluate(_dataset(["abc"])))
    assert batches == [([_ids("abc") + [0], [0] * 4], [_ids("bc") + [ignore] * 2, [ignore] * 4])]


def test_oov_targets_are_never_predicted():
    pipeline = TutorialPipeline(seq_len=3, batch_size=1, unknown_chars="oov")

    [(inputs, targets)] = _batches(pipeline.evaluate(_dataset(["a{b}"])))

    assert inputs == [[vocab.CHAR_TO_ID["a"], vocab.OOV_ID, vocab.CHAR_TO_ID["b"]]]
    assert targets == [[vocab.IGNORE_ID, vocab.CHAR_TO_ID["b"], vocab.IGNORE_ID]]


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("policy", vocab.UNKNOWN_POLICIES)
def test_num_batches_counts_what_the_pipeline_yields(policy, pad):
    snippets = ["To be, or not to be: that is the question.", "Caf\u00e9 \u2014 {x}" * 3, "ab"]
    pipeline = TutorialPipeline(seq_len=5, batch_size=1, unknown_chars=policy, pad=pad)

    yielded = len(_batches(pipeline.evaluate(_dataset(snippets))))

    assert (
        pipeline.num_batches(snippets)
        == yielded
        == len(_batches(pipeline.train(_dataset(snippets))))
    )
    assert yielded > 0


def test_train_repeats_epochs_caps_batches_and_is_seeded():
    pipeline = TutorialPipeline(seq_len=2, batch_size=1, shuffle_buffer=10)
    data = _dataset(["abcdefghijklmnopqrstuvwxyz"])  # 8 sequences of 3

    assert len(_batches(pipeline.train(data, local_epochs=3))) == 24
    assert len(_batches(pipeline.train(data, local_epochs=3, max_batches=5))) == 5
    first = _batches(pipeline.train(data, seed=7))
    assert first == _batches(pipeline.train(data, seed=7))
    assert sorted(first) == sorted(_batches(pipeline.evaluate(data)))


def test_vocabulary_sizes_and_names():
    assert TutorialPipeline().vocab_size == 86
    assert TutorialPipeline(unknown_chars="oov").vocab_size == 87
    assert (TutorialPipeline.name, TutorialPipeline.ignore_id) == ("tutorial", -1)


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ({"seq_len": 0}, "training.seq_len"),
        ({"batch_size": 0}, "training.batch_size"),
        ({"batch_size": 2.0}, "training.batch_size"),
        ({"unknown_chars": "keep"}, "data.unknown_chars"),
    ],
)
def test_bad_settings_are_config_errors(arguments, key):
    with pytest.raises(ConfigError) as error:
        TutorialPipeline(**arguments)
    assert error.value.key == key


def tutorial_preprocess(dataset, seq_len, batch_size, buffer_size, seed):
    """The tutorial's own code, as printed ("Federated Learning for Text Generation"), with an
    op-level seed given to its shuffle so that two pipelines can be compared batch for batch."""
    vocab_list = list(
        "dhlptx@DHLPTX $(,048cgkoswCGKOSW[_#'/37;?bfjnrvzBFJNRVZ\"&*.26:\naeimquyAEIMQUY]!%)-159\r"
    )
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            keys=vocab_list, values=tf.constant(list(range(len(vocab_list))), dtype=tf.int64)
        ),
        default_value=0,
    )

    def to_ids(x):
        s = tf.reshape(x["snippets"], shape=[1])
        chars = tf.strings.bytes_split(s).values
        return table.lookup(chars)

    def split_input_target(chunk):
        return tf.map_fn(lambda x: x[:-1], chunk), tf.map_fn(lambda x: x[1:], chunk)

    return (
        dataset.map(to_ids)
        .unbatch()
        .batch(seq_len + 1, drop_remainder=True)
        .shuffle(buffer_size, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(split_input_target)
    )


def test_the_tutorial_policy_gives_the_tutorials_batches_seed_for_seed():
    import tensorflow_federated as tff

    data = tff.simulation.datasets.shakespeare.get_synthetic()
    client = data.create_tf_dataset_for_client("MUCH_ADO_ABOUT_NOTHING_EMILIA")
    pipeline = TutorialPipeline(
        seq_len=10, batch_size=2, shuffle_buffer=5, unknown_chars="tutorial"
    )
    for seed in (0, 1):
        ours = _batches(pipeline.train(client, seed=seed))
        assert ours == _batches(tutorial_preprocess(client, 10, 2, 5, seed))
    assert len(ours) == 5
    assert _batches(pipeline.train(client, seed=0)) != _batches(pipeline.train(client, seed=1))
