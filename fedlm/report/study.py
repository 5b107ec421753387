"""A study's paper file: its published numbers, and the statistic its runs are judged by.

``experiments/<study>/paper.yaml``::

    study: reddi2021
    paper: Reddi et al., "Adaptive Federated Optimization", ICLR 2021
    paper_statistic: mean test accuracy over the last 100 of 1200 rounds
    metric: eval/accuracy
    statistic: mean_last          # mean_last | first_at_target | final
    scales:                       # per experiment_scale (the runs' param)
      full:
        last_rounds: 100
        target_accuracy: 0.54
        differences: [evaluation every 10 rounds ...]   # this scale's own, after the study's
      quick: {last_fraction: 0.1, target_accuracy: 0.25}
    differences:                  # what still differs from the paper, in words (any scale)
      - data: fedlm's build of the text, 1,117 clients, against TFF's 715
    paper_settings:               # the paper's settings, as fedlm config keys (every number's)
      training.rounds: 1200
      training.batch_size: 4
    numbers:
      - label: FedAdam
        match: {server_optimizer.name: adam}   # params every run of the setting must have
        paper_settings: {server_optimizer.learning_rate: 0.01}   # this number's own settings
        value: 57.0
        source: Table 2
        confirmed: false                       # not checked against the paper's text

``match`` says which runs a number belongs beside; ``paper_settings`` (the study's, updated by the
number's own) says whether they are comparable with it: only runs that have the paper's value for
every one of these keys get the number in the report's "paper" column. The others get it in a
column marked "not comparable", with the keys that differ; a study with numbers and no
``paper_settings`` is never comparable (its settings are not stated).

``differences`` (the study's, then those of the scales of the runs shown) are what remains
different from the paper where the settings match: the data, the loss, how often it evaluated.
A report lists them under "Differences from the paper" whenever it shows the paper's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fedlm import paths
from fedlm.errors import ConfigError

STATISTICS = ("mean_last", "first_at_target", "final")
SCALE_KEYS = ("target_accuracy", "last_rounds", "last_fraction", "differences")


@dataclass(frozen=True)
class PaperNumber:
    """One published number and the runs it belongs beside (params that must all match)."""

    label: str
    match: dict[str, str]
    value: float
    source: str
    confirmed: bool = False
    note: str = ""
    shown: str = ""  # the value as the paper prints it (57.0, 3906)
    paper_settings: dict[str, str] = field(default_factory=dict)  # this number's own settings

    def __str__(self) -> str:
        return self.shown or f"{self.value:g}"


@dataclass(frozen=True)
class Scale:
    """What a study's statistic means at one experiment_scale."""

    target_accuracy: float | None = None
    last_rounds: int | None = None  # mean_last: the last N rounds ...
    last_fraction: float | None = None  # ... or the last fraction of the rounds
    differences: tuple[str, ...] = ()  # from the paper, at this scale (after the study's own)


@dataclass(frozen=True)
class Study:
    name: str
    paper: str = ""
    paper_statistic: str = ""  # what the paper's numbers are, in words
    metric: str = "eval/accuracy"
    statistic: str = "final"  # mean_last | first_at_target | final
    scales: dict[str, Scale] = field(default_factory=dict)
    numbers: tuple[PaperNumber, ...] = ()
    # The paper's settings as fedlm config keys (override spelling); None: not stated.
    paper_settings: dict[str, str] | None = None
    differences: tuple[str, ...] = ()  # from the paper, in words, at every scale

    def scale(self, name: str | None) -> Scale:
        return self.scales.get(name or "", self.scales.get("default", Scale()))

    def settings_of(self, number: PaperNumber) -> dict[str, str] | None:
        """The settings behind ``number``: the study's, updated by the number's own (None: the
        paper file states none)."""
        if self.paper_settings is None and not number.paper_settings:
            return None
        return {**(self.paper_settings or {}), **number.paper_settings}


def load_study(path: str | Path) -> Study:
    """The study a paper file describes (the format is in this module's docstring)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    statistic = data.get("statistic", "final")
    if statistic not in STATISTICS:
        raise ConfigError(f"{path}: statistic", statistic, STATISTICS)
    scales = {}
    for name, values in (data.get("scales") or {}).items():
        if values is not None and not isinstance(values, dict):
            allowed = "a mapping of " + ", ".join(SCALE_KEYS)
            raise ConfigError(f"{path}: scales.{name}", values, allowed)
        values = dict(values or {})
        unknown = set(values) - set(SCALE_KEYS)
        if unknown:
            raise ConfigError(f"{path}: scales.{name}", sorted(unknown), ", ".join(SCALE_KEYS))
        key = f"{path}: scales.{name}.differences"
        values["differences"] = texts(values.get("differences"), key)
        scales[str(name)] = Scale(**values)
    numbers = tuple(
        PaperNumber(
            label=str(n["label"]),
            match={str(k): spelled(v) for k, v in (n.get("match") or {}).items()},
            value=float(n["value"]),
            source=str(n.get("source", "")),
            confirmed=bool(n.get("confirmed", False)),
            note=str(n.get("note", "")),
            shown=str(n["value"]),
            paper_settings=settings(n.get("paper_settings"), f"{path}: numbers.paper_settings"),
        )
        for n in data.get("numbers") or []
    )
    study_settings = data.get("paper_settings")
    return Study(
        name=str(data.get("study", path.parent.name)),
        paper=str(data.get("paper", "")),
        paper_statistic=str(data.get("paper_statistic", "")),
        metric=str(data.get("metric", "eval/accuracy")),
        statistic=statistic,
        scales=scales,
        numbers=numbers,
        paper_settings=None
        if study_settings is None
        else settings(study_settings, f"{path}: paper_settings"),
        differences=texts(data.get("differences"), f"{path}: differences"),
    )


def settings(values: object, key: str) -> dict[str, str]:
    """A ``paper_settings`` mapping: dotted config keys to values, spelled as fedlm logs them."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(key, values, "a mapping of dotted config keys to the paper's values")
    return {str(k): spelled(v) for k, v in values.items()}


def texts(values: object, key: str) -> tuple[str, ...]:
    """A ``differences`` list: one sentence per difference (none: empty)."""
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ConfigError(
            key,
            values,
            "a list of strings, one difference from the paper each (quote an item "
            "that holds ': ', or YAML reads it as a mapping)",
        )
    return tuple(v.strip() for v in values)


def study_file(name: str) -> Path:
    return paths.PROJECT_ROOT / "experiments" / name / "paper.yaml"


def find_study(name: str, path: str | Path | None = None) -> Study:
    """``path``, else ``experiments/<name>/paper.yaml`` if there is one, else a study with no
    paper (final and best accuracy, times)."""
    if path is not None:
        return load_study(path)
    default = study_file(name)
    return load_study(default) if default.is_file() else Study(name=name)


def spelled(value: object) -> str:
    """A YAML value as fedlm logs params (``run_info.param_value``): null, true, 0.9."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
