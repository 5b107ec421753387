"""The tutorial's own fine-tuning loop on TFF 0.87, with its ``clone_model`` or with a fresh model.

    uv run python experiments/seed_tutorial/tutorial_loop.py [--model clone|fresh] [--rounds 5]

TFF's tutorial "Federated Learning for Text Generation" loads the pre-trained Keras model,
compiles it, and gives FedAvg a model function that wraps ``tf.keras.models.clone_model`` of it;
it then puts the pre-trained weights into the server state and runs 5 rounds on two clients, 5
batches each, client SGD at 0.5, passing the same client datasets every round. This script runs
that loop as printed, with fedlm's pre-trained Dickens GRU (``uv run fedlm-pretrain``) in place of
the published one (which cannot be downloaded here), the tutorial's batches (fedlm's tutorial
pipeline with ``unknown_chars=tutorial`` and the tutorial's unseeded shuffle) and the tutorial's
speakers in the 1994 build. ``--model fresh`` builds the Keras model afresh inside the model
function instead of cloning it: the only difference. Before training, TFF's ``build_fed_eval``
scores the pre-trained weights through the same model function; after every round, a Keras
model given the server weights is evaluated on Lear's test split (whole) and on the tutorial's
own evaluation (2 batches of Lear's training split).
"""

from __future__ import annotations

import argparse

import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import ModelConfig, RuntimeConfig
from fedlm.data.clients import load_client_data
from fedlm.data.pipelines import build_pipeline
from fedlm.federated import runtime
from fedlm.federated.task import Task
from fedlm.models.pretrained import default_pretrained_path, load_keras_model

TRAIN_CLIENTS = ["AS_YOU_LIKE_IT_CELIA", "THE_TRAGEDY_OF_OTHELLO_MOOR_OF_VENICE_OTHELLO"]
EVAL_CLIENT = "THE_TRAGEDY_OF_KING_LEAR_LEAR"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("clone", "fresh"), default="clone")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    task = Task(
        build_pipeline(
            "tutorial", seq_len=100, batch_size=8, shuffle_buffer=100, unknown_chars="tutorial"
        ),
        ModelConfig(name="dickens_gru"),
    )
    train_data, test_data = load_client_data("shakespeare", "~/.cache/fedlm/shakespeare", None)

    def data(client, source=train_data):  # the tutorial's data(): preprocess(...).take(5)
        return task.pipeline.train(source.create_tf_dataset_for_client(client), max_batches=5)

    train_datasets = [data(client) for client in TRAIN_CLIENTS]
    lear_test = task.pipeline.evaluate(test_data.create_tf_dataset_for_client(EVAL_CLIENT))
    tutorial_eval = task.pipeline.evaluate(
        train_data.create_tf_dataset_for_client(EVAL_CLIENT), max_batches=2
    )

    keras_model = load_keras_model(default_pretrained_path("dickens_gru"))
    keras_model.compile(loss=task.loss(), metrics=task.metrics())
    input_spec = train_datasets[0].element_spec

    def create_tff_model():
        model = (
            tf.keras.models.clone_model(keras_model)
            if args.model == "clone"
            else (task.keras_model())
        )
        return tff.learning.models.from_keras_model(
            model, input_spec=input_spec, loss=task.loss(), metrics=task.metrics()
        )

    pre_trained_weights = tff.learning.models.ModelWeights(
        trainable=[v.numpy() for v in keras_model.trainable_weights],
        non_trainable=[v.numpy() for v in keras_model.non_trainable_weights],
    )
    with runtime.execution_context(RuntimeConfig()):
        fed_eval = tff.learning.algorithms.build_fed_eval(create_tff_model)
        fed_avg = tff.learning.algorithms.build_weighted_fed_avg(
            model_fn=create_tff_model,
            client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        )
        evaluator = task.compiled_keras_model()  # made after TFF has traced its models

        scored = fed_eval.next(
            fed_eval.set_model_weights(fed_eval.initialize(), pre_trained_weights),
            [lear_test],
        ).metrics["client_work"]["eval"]["current_round_metrics"]
        print(
            f"model={args.model}: build_fed_eval of the pre-trained weights on Lear's test "
            f"split: loss={scored['loss']:.3f} accuracy={scored['accuracy']:.3f}"
        )

        def keras_evaluate(state, round_num):
            fed_avg.get_model_weights(state).assign_weights_to(evaluator)
            test_loss, test_accuracy, _ = evaluator.evaluate(lear_test, verbose=0)
            loss, accuracy, _ = evaluator.evaluate(tutorial_eval, verbose=0)
            print(
                f"round {round_num}: Lear test loss={test_loss:.3f} accuracy={test_accuracy:.3f}"
                f" | tutorial eval (2 training batches) loss={loss:.3f} accuracy={accuracy:.3f}"
            )

        state = fed_avg.set_model_weights(fed_avg.initialize(), pre_trained_weights)
        keras_evaluate(state, 0)
        for round_num in range(1, args.rounds + 1):
            result = fed_avg.next(state, train_datasets)
            state = result.state
            train = result.metrics["client_work"]["train"]
            print(
                f"round {round_num}: train loss={train['loss']:.3f} "
                f"accuracy={train['accuracy']:.3f}"
            )
            keras_evaluate(state, round_num)


if __name__ == "__main__":
    main()
