"""The round loop's TFF learning processes, built once per distinct configuration in a test
process (tests/conftest.py installs :func:`reusing` once a test module imports the loop)."""

import re

# The process never reads the model config's pre-trained path: the starting weights are set on
# its state (fedlm.experiment.starting_weights), so a run from a pre-trained file reuses it.
_PRETRAINED = re.compile(r"\bpretrained=(\\?'[^'\\]*\\?'|None)")  # quoted once or twice


def described(value) -> str:
    """What a process builder's argument is, as far as the built process can depend on it: a
    model function by what its closure holds (bound methods by their object, a dataclass whose
    repr is its every field), anything else by its repr."""
    if isinstance(value, list | tuple):
        return repr([described(item) for item in value])
    if callable(value) and getattr(value, "__closure__", None):
        return repr([described(cell.cell_contents) for cell in value.__closure__])
    owner = getattr(value, "__self__", None)
    if owner is not None:
        return f"{value.__qualname__} of {owner!r}"
    return repr(value)


def reusing(build):
    """``build`` (fedlm.federated.process.build_learning_process, as the round loop calls it)
    made once per distinct argument list in a test process: a TFF learning process is a set of
    stateless computations of its arguments, and building one is most of a tiny run's cost (TFF
    traces the model several times: 7.1 CPU s for a run of the shrunk config that builds it, 2.6
    for one that reuses it, measured 2026-12-03). Every distinct configuration is still built, the
    first time it is asked for; ``built`` counts the builds and ``reused`` the reuses."""
    processes = {}

    def build_once(*args, **kwargs):
        key = _PRETRAINED.sub("pretrained=<any>", described([*args, *sorted(kwargs.items())]))
        if key in processes:
            build_once.reused += 1
        else:
            processes[key] = build(*args, **kwargs)
            build_once.built += 1
        return processes[key]

    build_once.built = build_once.reused = 0
    return build_once
