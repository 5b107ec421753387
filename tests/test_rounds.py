"""What a round is made of: its schedule, its metrics and progress line, the time left."""

from fedlm.rounds import RemainingTime, format_metrics, start_line


def test_the_time_left_follows_the_recent_pace_and_forgets_a_pause():
    clock = RemainingTime(window=4, now=0.0)
    assert clock.after_round(99, now=10.0) == 990.0
    assert clock.after_round(98, now=1010.0) == 505.0 * 98  # a 1000 s pause in round 2
    now = 1010.0
    for left in (97, 96, 95):
        now += 10.0
        assert clock.after_round(left, now=now) > 10.0 * left  # the pause still counts
    now += 10.0
    assert clock.after_round(94, now=now) == 10.0 * 94  # four rounds on: forgotten


def test_the_progress_line_shows_loss_and_accuracy_of_one_prefix():
    metrics = {"eval/loss": 1.23456, "eval/accuracy": 0.5, "fed_eval/loss": 9.0, "train/loss": 2.0}
    assert format_metrics("eval", metrics) == "eval: loss=1.235, accuracy=0.500"
    assert format_metrics("train", metrics) == "train: loss=2.000"
    assert start_line(7, metrics) == "round 0/7 | eval: loss=1.235, accuracy=0.500"
