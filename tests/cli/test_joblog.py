"""A job's console output in its log file, and a log file on a full disk."""

import sys

import pytest

from fedlm.cli.joblog import job_log
from fedlm.errors import DiskFullError


def test_every_line_goes_to_the_console_and_the_log_with_the_prefix_on_the_console_only(
    tmp_path, capfd
):
    log = tmp_path / "train.log"
    with job_log(log, prefix="[seed=1] "):
        print("round 1/2")
        print("warning", file=sys.stderr)
    out, err = capfd.readouterr()
    assert (out, err) == ("[seed=1] round 1/2\n", "[seed=1] warning\n")
    assert log.read_text() == "round 1/2\nwarning\n"


def test_a_log_on_a_full_disk_is_one_error_naming_it_and_the_console_comes_back(capfd):
    stdout, stderr = sys.stdout, sys.stderr
    # /dev/full: every write fails with ENOSPC
    with pytest.raises(DiskFullError) as full, job_log("/dev/full"):
        print("round 1/2")
        print("never reached")
    assert str(full.value) == "writing the job's log /dev/full: No space left on device"
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert capfd.readouterr() == ("round 1/2", "")  # what met the full disk is shown
