"""The round loop's TFF learning processes, built once per distinct configuration in a test
process (tests/conftest.py installs :func:`reusing` once a test module imports the loop)."""

import dataclasses

# Fields no built process depends on: a run's starting weights are set on the process's state
# (fedlm.experiment.starting_weights), whatever file they came from.
UNUSED_FIELDS = frozenset({"pretrained"})


def described(value) -> str:
    """What a process builder's argument is, as far as the built process can depend on it: a
    model function by what its closure holds (bound methods by their object), a dataclass by its
    fields but :data:`UNUSED_FIELDS`, anything else by its repr."""
    if isinstance(value, list | tuple):
        return repr([described(item) for item in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f.name for f in dataclasses.fields(value) if f.name not in UNUSED_FIELDS]
        kept = {name: described(getattr(value, name)) for name in fields}
        return f"{type(value).__qualname__}({kept!r})"
    if callable(value) and getattr(value, "__closure__", None):
        return repr([described(cell.cell_contents) for cell in value.__closure__])
    owner = getattr(value, "__self__", None)
    if owner is not None:
        return f"{value.__qualname__} of {described(owner)}"
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
        key = described([*args, *sorted(kwargs.items())])
        if key in processes:
            build_once.reused += 1
        else:
            processes[key] = build(*args, **kwargs)
            build_once.built += 1
        return processes[key]

    build_once.built = build_once.reused = 0
    return build_once
