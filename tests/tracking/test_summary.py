"""A run's summary metrics, and the stopped rounds its running time leaves out."""

import pytest

from fedlm.tracking import summary


def test_a_round_far_slower_than_the_rounds_before_it_counts_as_their_median():
    # Round 1 compiles (slow, nothing before it to compare); round 6 was stopped for 4,916 s.
    seconds = [(1, 30.0), (2, 4.0), (3, 5.0), (4, 4.0), (5, 6.0), (6, 4916.0), (7, 4.0)]
    assert summary.stopped(seconds) == {6: (4916.0, 5.0)}
    history = {"round/seconds": seconds, "eval/seconds": [(0, 2.0), (7, 2.0)]}
    assert summary.running_seconds(history) == 30 + 4 + 5 + 4 + 6 + 5 + 4 + 2 + 2


def test_fewer_than_three_rounds_before_are_not_enough_to_call_one_stopped():
    assert summary.stopped([(1, 1.0), (2, 1.0), (3, 100.0)]) == {}
    assert summary.stopped([(1, 1.0), (2, 1.0), (3, 1.0), (4, 10.0)]) == {}  # not more than 10x


def test_summary_metrics_of_a_history():
    history = {
        "eval/accuracy": [(0, 0.1), (2, 0.4), (4, 0.3), (1, 0.4)],
        "round/seconds": [(1, 60.0), (2, 60.0), (3, 60.0), (4, 60.0)],
    }
    assert summary.summary_metrics(history) == {
        "summary/final_eval_accuracy": 0.3,
        "summary/best_eval_accuracy": 0.4,
        "summary/best_round": 1.0,  # the first round that reached it
        "summary/rounds": 4.0,
        "summary/running_minutes": pytest.approx(4.0),
    }
    assert summary.summary_metrics({}) == {}
