"""The race's time left: each entry timed on its own runs, scaled across budgets, honest before it knows."""

from __future__ import annotations

import pytest

from headstart.race.eta import RaceClock, format_duration
from headstart.race.grid import RaceSpec

from .conftest import tiny_backbone


def test_an_entry_is_timed_on_its_own_runs_and_scaled_by_labels_per_class():
    clock = RaceClock()
    assert clock.expect("full", 8) is None and clock.left([("full", 8)]) == ""
    clock.observe("full", 8, 10.0)
    clock.observe("full", 8, 12.0)
    clock.observe("probe", 8, 2.0)
    assert clock.expect("full", 8) == pytest.approx(11.0)
    assert clock.expect("full", 32) == pytest.approx(44.0)  # four times the labels: four times the time
    assert clock.expect("probe", 32) == pytest.approx(8.0)
    assert clock.remaining([("full", 32), ("probe", 8)]) == (pytest.approx(46.0), True)
    assert clock.left([("full", 32), ("probe", 8)]) == "about 46 s left"


def test_the_nearest_budget_timed_is_the_one_scaled():
    clock = RaceClock()
    clock.observe("full", 4, 4.0)
    clock.observe("full", 64, 128.0)  # 2 s per label per class here, 1 s at 4
    assert clock.expect("full", 32) == pytest.approx(64.0)  # from 64, nearer on a log scale
    assert clock.expect("full", 8) == pytest.approx(8.0)  # from 4
    clock.observe("zero-shot", 0, 3.0)
    assert clock.expect("zero-shot", 0) == pytest.approx(3.0)


def test_an_entry_never_timed_makes_the_figure_a_lower_bound():
    clock = RaceClock([{"strategy": "probe", "per_class": 8, "seconds": 100.0, "predict_seconds": 20.0}])
    seconds, complete = clock.remaining([("probe", 8), ("full", 8)])
    assert seconds == pytest.approx(120.0) and complete is False
    assert clock.left([("probe", 8), ("full", 8)]) == "at least 2 min left"


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (42.4, "42 s"), (420, "7 min"), (3600, "1 h"),
                                           (4800, "1 h 20 min"), (2 * 86400 + 3 * 3600 + 59, "2 d 3 h"),
                                           (86400, "1 d")])
def test_durations_read_in_two_units_at_most(seconds, text):
    assert format_duration(seconds) == text


def test_a_resumed_race_is_timed_from_its_finished_runs_before_it_runs_one(tmp_path, capsys):
    import numpy as np

    from headstart.data import Task
    from headstart.race import run_race

    texts = [f"{'good fun' if i % 2 else 'bad dull'} film {i}" for i in range(120)]
    task = Task(texts, np.arange(120) % 2, ("neg", "pos"), "text", "toy")  # enough for a selection and a test part

    def race(seeds):
        spec = RaceSpec("toy", "minilm-l6", strategies=["probe", "full"], budgets=[8], seeds=seeds,
                        train_options={"epochs": 1})
        run_race(spec, tmp_path, task=task, backbone=lambda p: tiny_backbone("minilm-l6", p), progress=True)
        return capsys.readouterr().err

    first = race(1)
    # the probe's run is timed before full's starts, but full's own time is unknown: no figure yet
    assert "race:" in first and " left" not in first
    resumed = race(2)
    # both entries were timed by the first race's runs: a figure from the resumed race's first run on
    assert "probe @ 8/class, seed 1 · about" in resumed and "full @ 8/class, seed 1 · about" in resumed
