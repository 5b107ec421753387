"""A TFF model of one zero-initialised dense layer (3 features, 2 classes): a learning process
small enough to build in a test in a second or two."""

import tensorflow as tf
import tensorflow_federated as tff


def linear_model_fn():
    keras_model = tf.keras.Sequential(
        [tf.keras.layers.Input(shape=(3,)), tf.keras.layers.Dense(2, kernel_initializer="zeros")]
    )
    return tff.learning.models.from_keras_model(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=(tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)),
    )
