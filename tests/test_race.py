"""The race on a tiny backbone: resume after SIGKILL, reproducibility, grid growth, report, verdicts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headstart.errors import HeadstartError
from headstart.race import RaceSpec, default_budgets, logme, negative_transfer, recommend, summarize
from headstart.report import write_report

from .race_child import run, toy_spec, toy_task

ROOT = Path(__file__).resolve().parents[1]


def _rows(db: Path) -> dict[str, float]:
    try:
        with sqlite3.connect(db) as con:
            return dict(con.execute("SELECT key, finished FROM runs"))
    except sqlite3.OperationalError:  # the child has created the file but not yet the table
        return {}


def test_a_killed_race_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    """SIGKILL mid-grid: finished runs are kept, the rest complete, and every number equals a race that was
    never interrupted (fp32)."""
    out = tmp_path / "race"
    child = subprocess.Popen([sys.executable, "-m", "tests.race_child", str(out), "0.4"], cwd=ROOT)
    db = out / "results.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and (not db.exists() or len(_rows(db)) < 4):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = _rows(db)
    assert 4 <= len(before) < len(toy_spec().runs())  # killed mid-grid
    records = run(str(out))
    after = _rows(db)
    assert len(records) == len(toy_spec().runs()) == len(after)
    assert all(after[k] == t for k, t in before.items())  # finished runs were not redone
    fields = ("sel_acc", "test_acc", "test_macro_f1", "best_epoch", "delta_l2")

    def numbers(records):
        # every number; an epoch's wall-clock seconds are the one thing allowed to differ
        return {r["key"]: tuple(str(r[f]) for f in fields) + (str([{k: v for k, v in e.items() if k != "seconds"}
                                                                   for e in r["curve"]]),) for r in records}

    assert numbers(records) == numbers(run(str(tmp_path / "straight")))


def test_identical_seeds_give_identical_tables(tmp_path):
    tables = []
    for name in ("a", "b"):
        rows = summarize(run(str(tmp_path / name)), toy_spec().strategies)
        tables.append([(r.strategy, r.budget, r.acc_mean, r.acc_std, r.f1_mean, r.delta_l2) for r in rows])
    assert tables[0] == tables[1]


def test_a_larger_grid_only_adds_the_missing_runs(tmp_path):
    first = _rows_after(tmp_path, budgets=(4,))
    second = _rows_after(tmp_path, budgets=(4, 8))
    assert len(second) == 2 * len(first) and all(second[k] == t for k, t in first.items())


def _rows_after(tmp_path, **spec):
    run(str(tmp_path / "grow"), **spec)
    return _rows(tmp_path / "grow" / "results.sqlite")


def test_report_is_self_contained_and_explains_itself(tmp_path):
    import csv
    import json

    run(str(tmp_path / "r"))
    page = write_report(tmp_path / "r").read_text()
    assert page.count('src="data:image/png;base64,') == 2 + 3  # learning curve, cost plot, 3 trained strategies
    assert "<code>probe</code>: fitted without epochs (closed form)" in page
    assert "http://" not in page and "https://" not in page
    for text in ("Recommendation", "Negative-transfer check", "Learning curves", "Cost against accuracy",
                 "always predicting the most frequent test class scores 0.500", "true \\ predicted", "Per class",
                 "Runs that hit the epoch cap", "headstart compare toy",
                 "--set epochs=2", "more than 2 noise units", "ms / prediction", "max epochs ×"):
        assert text in page, text
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert ("Some test examples it got wrong" in page) == (results["recommendation"]["test_acc"] < 1)
    assert results["chance"] == 0.5 and results["reproduce"].startswith("headstart compare toy")
    with open(tmp_path / "r" / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == len(toy_spec().runs())
    assert (tmp_path / "r" / "plots" / "learning_curve.png").stat().st_size > 10_000


def test_headstart_report_rebuilds_a_folder_and_refuses_one_without_a_race(tmp_path):
    from headstart.cli import main

    run(str(tmp_path / "r"), budgets=(4,), seeds=1, strategies=("probe",))
    assert not (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "r")]) == 0 and (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "empty")]) == 2


def _record(strategy, budget, seed, acc, n_test=1000, sel=None):
    return {"strategy": strategy, "budget": budget, "seed": seed, "test_acc": acc, "test_macro_f1": acc,
            "sel_acc": acc if sel is None else sel, "n_selection": n_test,
            "from_scratch": strategy.startswith("scratch"),
            "n_test": n_test, "per_class": budget, "trainable_params": 10 if strategy == "probe" else 1000,
            "seconds": 1.0, "seconds_per_epoch": None, "epochs": 1, "delta_l2": 0.0, "delta_relative": 0.0}


@pytest.mark.parametrize("accs,helps,first_line", [
    ({"scratch": [0.80, 0.81], "probe": [0.79, 0.80]}, False, "Pretraining is NOT helping on this data"),
    ({"scratch": [0.60, 0.61], "probe": [0.61, 0.62]}, False, "Pretraining is NOT helping on this data"),
    ({"scratch": [0.60, 0.61], "probe": [0.75, 0.76]}, True, "Pretraining helps at every budget."),
])
def test_negative_transfer_verdict(accs, helps, first_line):
    records = [_record(s, 8, seed, a) for s, values in accs.items() for seed, a in enumerate(values)]
    verdict = negative_transfer(records)
    assert verdict.pretraining_helps is helps and verdict.message.startswith(first_line)


def test_verdict_fires_when_the_labels_are_invisible_to_the_features(tmp_path):
    import numpy as np

    from headstart.data import Task
    from headstart.race import run_race

    from .conftest import tiny_backbone

    rng = np.random.default_rng(1)  # labels drawn independently of the texts: nothing can be transferred
    texts = [" ".join(rng.choice(["good", "bad", "movie", "plot", "fun"], 4)) + f" {i}" for i in range(300)]
    task = Task(texts, rng.integers(0, 2, 300), ("a", "b"), "text", "noise")
    spec = RaceSpec("noise", "minilm-l6", strategies=["scratch", "probe", "full"], budgets=[16, 64], seeds=2,
                    train_options={"epochs": 3})
    records = run_race(spec, tmp_path, task=task, backbone=lambda p: tiny_backbone("minilm-l6", p), progress=False)
    verdict = negative_transfer(records)
    assert verdict.pretraining_helps is False and "NOT helping" in verdict.message


def _scores(test, sel):
    """Records of three strategies × two seeds with the given test and selection accuracies per strategy."""
    return [_record(s, 64, seed, test[s] + 0.001 * seed, sel=sel[s] + 0.001 * seed)
            for s in ("scratch", "probe", "full") for seed in (0, 1)]


def test_only_selection_scores_choose_the_recommendation():
    base = _scores({"scratch": 0.6, "probe": 0.70, "full": 0.80}, {"scratch": 0.6, "probe": 0.70, "full": 0.80})
    rec = recommend(summarize(base), negative_transfer(base))
    assert rec.strategy == "full" and rec.test_acc > 0.8
    # selection scores change, test scores stay: the recommendation moves
    moved = _scores({"scratch": 0.6, "probe": 0.70, "full": 0.80}, {"scratch": 0.6, "probe": 0.80, "full": 0.70})
    rec = recommend(summarize(moved), negative_transfer(moved))
    assert rec.strategy == "probe" and abs(rec.test_acc - 0.7005) < 1e-9  # its test number is reported as measured
    # test scores change, selection scores stay: the recommendation does not move
    same = _scores({"scratch": 0.6, "probe": 0.90, "full": 0.50}, {"scratch": 0.6, "probe": 0.70, "full": 0.80})
    assert recommend(summarize(same), negative_transfer(same)).strategy == "full"


def test_the_verdict_pits_options_chosen_on_selection_and_judges_on_test():
    records = [_record(s, 8, seed, t, sel=v) for s, t, v in (
        ("scratch", 0.50, 0.50), ("scratch-small", 0.70, 0.72),  # the better baseline on selection
        ("probe", 0.95, 0.70), ("full", 0.72, 0.90))  # full wins selection; probe is better only on test
        for seed in (0, 1)]
    (c,) = negative_transfer(records).comparisons
    assert (c.best_strategy, c.scratch_strategy) == ("full", "scratch-small")
    assert abs(c.difference - 0.02) < 1e-9 and not c.helps  # judged on test: 0.72 vs 0.70, within noise


def test_recommendation_prefers_the_cheaper_of_two_tied_strategies():
    records = [_record(s, 64, seed, a) for s, a in (("probe", 0.80), ("full", 0.805), ("scratch", 0.6))
               for seed in (0, 1)]
    rec = recommend(summarize(records), negative_transfer(records))
    assert rec.strategy == "probe" and "within noise" in rec.reasons[1]


def test_logme_ranks_informative_features_above_noise():
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    informative = np.eye(3)[y] * 2 + rng.normal(0, 0.5, (400, 3))
    noise = rng.normal(0, 1, (400, 3))
    assert logme(np.hstack([informative, noise]), y) > logme(rng.normal(0, 1, (400, 6)), y)


def test_default_budgets_fit_the_data():
    task = toy_task(500)  # 250 per class: 150 in the pool (a fifth each to selection and test)
    assert default_budgets(task) == [8, 32, 128, None]
    assert default_budgets(toy_task(40)) == [8, None]


@pytest.mark.parametrize("kwargs,message", [
    ({"strategies": ["probe", "warp"]}, "Unknown strategy 'warp'. Valid strategies:"),
    ({"seeds": 0}, "The 'seeds' parameter of a race must be a positive integer. Got 0 instead (e.g. seeds=3)."),
    ({"split_seed": -5}, "The 'split_seed' parameter of a race must be a non-negative integer. Got -5 instead"),
    ({"test_limit": 0}, "The 'test_limit' parameter of a race must be a positive integer or None. Got 0 instead"),
    ({"budgets": [8, 2.5]}, "A label budget is labelled examples per class (an integer, 0 or more) or 'all'. "
                            "Got 2.5"),
    ({"strategies": ["probe", "probe"]}, "Each strategy once"),
])
def test_bad_race_specs(kwargs, message):
    with pytest.raises(HeadstartError) as err:
        RaceSpec("toy", "minilm-l6", **kwargs)
    assert str(err.value).startswith(message)
