"""Central pre-training of a character model on a corpus (``fedlm-pretrain``): a job, like
federated training, above ``data`` and ``models``.

    corpus -> batches under the tutorial's or the papers' pipeline, held-out slice,
              Shakespeare test snippets                               fedlm.pretraining.batches
    -> Keras fit, evaluation, save; metrics and the saved path          fedlm.pretraining.job
"""

from fedlm.pretraining.job import PretrainResult, evaluate_saved, pretrain

__all__ = ["PretrainResult", "evaluate_saved", "pretrain"]
