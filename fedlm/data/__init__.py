"""fedlm's data: federated Shakespeare (built, loaded, sized), per-client pipelines, corpora.

Import the modules themselves (``from fedlm.data.clients import read_snippets``); this package
imports nothing on its own, so that what needs no TensorFlow (reading and sizing clients,
``fedlm/data/sizes.py``; parsing the Gutenberg text) loads without it.
"""
