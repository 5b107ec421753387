"""Hydra's private API in one place: another Hydra release series is refused in one line."""

import hydra
import pytest

from fedlm.cli.hydra_compat import HYDRA_VERSION, check_hydra_version, hydra_args_parser
from fedlm.errors import FedlmError


def test_the_installed_hydra_gives_hydra_mains_own_parser():
    assert hydra.__version__.startswith(HYDRA_VERSION + ".")
    args, _ = hydra_args_parser().parse_known_args(["data=synthetic", "seed=1", "-m"])
    assert args.overrides == ["data=synthetic", "seed=1"] and args.multirun


def test_another_hydra_release_series_is_refused_in_one_line():
    check_hydra_version("1.3.2")
    with pytest.raises(FedlmError) as refused:
        check_hydra_version("1.4.0")
    assert str(refused.value) == (
        "fedlm reads the command line with Hydra 1.3's private hydra._internal.utils."
        "get_args_parser, but hydra-core 1.4.0 is installed. Re-check that function and update "
        "fedlm/cli/hydra_compat.py (HYDRA_VERSION), or install hydra-core~=1.3.0."
    )
