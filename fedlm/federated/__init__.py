"""Federated learning on TensorFlow Federated: learning processes, aggregators, client sampling,
evaluation, and the runtime (execution contexts and their worker processes).

Import the modules themselves (``from fedlm.federated import runtime``); this package imports no
TensorFlow on its own, so ``fedlm-worker`` starts without it.
"""
