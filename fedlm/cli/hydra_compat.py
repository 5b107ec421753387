"""Every use of Hydra's private API in fedlm, written for hydra-core 1.3 (1.3.8 in uv.lock).

``fedlm-train`` refuses an override of a key the typed config does not have before Hydra composes
anything (:func:`fedlm.cli.train.check_command_line`), and reads the command line with the parser
``hydra.main`` itself uses, ``hydra._internal.utils.get_args_parser`` (:func:`hydra_args_parser`).
Another Hydra release series fails with one line naming both; on an upgrade, re-check that
function and update :data:`HYDRA_VERSION` (and pyproject.toml's ``hydra-core`` range).
"""

from __future__ import annotations

import argparse

import hydra

from fedlm.errors import FedlmError

HYDRA_VERSION = "1.3"  # the release series (pyproject.toml: hydra-core>=1.3,<1.4)


def check_hydra_version(version: str) -> None:
    """Raise :class:`FedlmError` unless ``version`` is of the series fedlm was written for."""
    if version.split(".")[:2] != HYDRA_VERSION.split("."):
        raise FedlmError(
            f"fedlm reads the command line with Hydra {HYDRA_VERSION}'s private "
            f"hydra._internal.utils.get_args_parser, but hydra-core {version} is installed. "
            "Re-check that function and update fedlm/cli/hydra_compat.py (HYDRA_VERSION), or "
            f"install hydra-core~={HYDRA_VERSION}.0."
        )


def hydra_args_parser() -> argparse.ArgumentParser:
    """The argument parser ``hydra.main`` uses (its ``overrides`` are the command's overrides)."""
    check_hydra_version(hydra.__version__)
    from hydra._internal.utils import get_args_parser

    return get_args_parser()
