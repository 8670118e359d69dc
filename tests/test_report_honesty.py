"""The report says what happened: an incomplete race recommends only from finished cells, a tie names the rule that
broke it and weighs what a user pays, diverging runs and noisy timings are flagged, the star's caption matches."""

from __future__ import annotations

from headstart.race import RaceSpec, run_race
from headstart.race.analysis import Row, TransferVerdict, missing_cells, recommend
from headstart.race.grid import expected_cells
from headstart.report import write_report
from headstart.report.details import diverging_runs, timing_caveat

from .race_child import toy_task
from .test_race_backbones import A


def _row(strategy, budget, sel, seeds=3, seconds=10.0, params=1000, predict_ms=1.0):
    return Row(strategy, budget, float(budget), seeds, False, sel, 0.01, sel, 0.01, sel, 0.01, 1000, 1000, params,
               seconds, None, 10.0, 0.0, 0.0, predict_ms=predict_ms)


def test_an_incomplete_race_recommends_at_the_largest_budget_every_entry_finished():
    expected = {(s, b): 3 for s in ("probe", "full", "lora") for b in (8, 32)}
    rows = [_row("probe", 8, 0.70), _row("full", 8, 0.72), _row("lora", 8, 0.71), _row("probe", 32, 0.80)]
    rec = recommend(rows, TransferVerdict(), expected)
    assert rec.budget == 8 and "the largest budget every entry has finished; 32 is incomplete" in rec.reasons[0]
    assert missing_cells(rows, expected) == ["full at 32/class (0 of 3 seeds)", "lora at 32/class (0 of 3 seeds)"]
    assert recommend(rows, TransferVerdict()).budget == 32  # without the grid: the most raced, as before


def test_a_tie_goes_to_what_costs_least_to_train_then_to_predict_then_to_store():
    rows = [_row("full", 8, 0.800, seconds=100, params=20_000_000, predict_ms=2.0),
            _row("contrastive", 8, 0.799, seconds=200, params=19_999_230, predict_ms=2.0),
            _row("lora", 8, 0.798, seconds=105, params=300_000, predict_ms=2.05)]
    rec = recommend(rows, TransferVerdict())
    # contrastive's 770 fewer parameters never outweigh twice the seconds; lora costs the same to train and to
    # predict (within 10%), so its far fewer parameters decide
    assert rec.strategy == "lora"
    assert "costs less by the tie-break (the least seconds per run, then milliseconds per prediction, then trainable " \
           "parameters" in rec.reasons[1] and "105s per run instead of 100s" in rec.reasons[1]


def test_diverging_runs_and_noisy_timings_are_said():
    rising = {"strategy": "full", "budget": 8, "seed": 0, "seconds": 10.0,
              "curve": [{"train_loss": v} for v in (0.7, 0.6, 0.9, 1.4)]}
    falling = {"strategy": "probe", "budget": 8, "seed": 1, "seconds": 31.0,
               "curve": [{"train_loss": v} for v in (0.7, 0.6, 0.5)]}
    assert diverging_runs([rising, falling]).startswith("1 run(s) diverged") and "full at 8/class seed 0" in \
        diverging_runs([rising, falling])
    assert diverging_runs([falling]) is None
    steady = [{**falling, "seed": s, "seconds": 30.0 + s} for s in range(3)]
    assert timing_caveat(steady) is None
    noisy = steady + [{**falling, "seed": 3, "seconds": 95.0}]
    assert "took up to 3.2× as long" in timing_caveat(noisy)


def test_the_report_of_an_interrupted_race_says_which_cells_are_missing(tmp_path):
    spec = RaceSpec("toy", A, strategies=["probe", "full"], budgets=[8], seeds=2, train_options={"epochs": 1})
    run_race(spec, tmp_path, task=toy_task(), progress=False)
    bigger = RaceSpec("toy", A, strategies=["probe", "full"], budgets=[8, 16], seeds=2, train_options={"epochs": 1})
    stopped = []

    def stop_after_one(record, n, total):
        stopped.append(record)
        raise KeyboardInterrupt

    try:
        run_race(bigger, tmp_path, task=toy_task(), progress=False, on_run_end=stop_after_one)
    except KeyboardInterrupt:
        pass
    page = write_report(tmp_path).read_text()
    assert "This race is incomplete" in page and "2 cell(s) of its grid have not finished" in page
    assert "full at 16/class (0 of 2 seeds)" in page
    assert expected_cells(bigger)[("full", 16)] == 2
    assert "the largest budget every entry has finished; 16 is incomplete" in page
