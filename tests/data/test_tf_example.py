"""The tf.train.Example reader of fedlm.data.tf_example, against TensorFlow's own writer."""

import pytest
import tensorflow as tf

from fedlm.data.tf_example import snippet


def test_snippets_are_decoded_as_tensorflow_decodes_them():
    """snippet decodes tf.train.Example without TensorFlow: long, non-ASCII snippets and
    other features (every protobuf wire type) as TensorFlow writes them."""
    text = "Ay, marry, is't; " * 40 + "\u00e9\u2014\U0001f600"
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "a_number": tf.train.Feature(int64_list=tf.train.Int64List(value=[2**40, -1])),
                "a_float": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
                "snippets": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])
                ),
                "zz": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"other"])),
            }
        )
    )
    assert snippet(example.SerializeToString()) == text
    with pytest.raises(ValueError, match="no 'snippets' feature"):
        snippet(tf.train.Example().SerializeToString())
