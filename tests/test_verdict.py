"""The honest verdict: run identity, stores of other formats, the current grid only, a user's test file,
seeding without touching global state, LP-FT's clean validation, and an advisor that sees only the pool."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.data import Task, make_splits
from headstart.errors import HeadstartError
from headstart.race import RaceSpec, ResultStore, advise, run_race
from headstart.race.grid import RunSpec
from headstart.report import write_report
from headstart.strategies.finetune import Full

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task

TINY = {"backbone": lambda p: tiny_backbone("minilm-l6", p), "progress": False}


@pytest.mark.parametrize("name,value", [("default_lr", Full.default_lr * 2), ("default_monitor", "val_acc")])
def test_a_changed_default_changes_the_run_key(monkeypatch, name, value):
    spec, run = RaceSpec("toy", "minilm-l6", strategies=["full"], budgets=[8]), RunSpec("full", 8, 0)
    before = spec.run_key(run, "data")
    monkeypatch.setattr(Full, name, value)
    assert spec.run_key(run, "data") != before


@pytest.mark.parametrize("strategy,default", [("full", "none"), ("lldr", "none"), ("partial:2", "none"),
                                              ("lora", "none"), ("scratch", "val_acc")])
def test_the_key_holds_the_monitor_a_run_keeps_its_weights_by(strategy, default):
    run = RunSpec(strategy, 8, 0)
    keys = {m: RaceSpec("t", "minilm-l6", strategies=[strategy], budgets=[8],
                        train_options={} if m is None else {"monitor": m}).run_key(run, "d")
            for m in (None, "val_acc", "none")}
    assert keys[None] == keys[default] and keys["val_acc"] != keys["none"]  # the default is the explicit run


@pytest.mark.parametrize("change", [{"train_options": {"patience": 3}}, {"backbone_options": {"max_length": 16}},
                                    {"test_limit": 50}, {"split_seed": 1}])
def test_every_setting_is_part_of_the_run_key(change):
    run = RunSpec("lora", 8, 0)
    base = RaceSpec("toy", "minilm-l6", strategies=["lora"], budgets=[8])
    assert RaceSpec("toy", "minilm-l6", strategies=["lora"], budgets=[8], **change).run_key(run, "d") != \
        base.run_key(run, "d")
    assert base.run_key(run, "d", "test-file") != base.run_key(run, "d")


def test_the_key_holds_the_precision_a_run_trains_in():
    run = RunSpec("lora", 8, 0)
    keys = {p: RaceSpec("t", "minilm-l6", strategies=["lora"], budgets=[8], train_options={"precision": p}).run_key(
        run, "d") for p in ("fp32", "bf16", "auto")}
    assert keys["fp32"] != keys["bf16"] and keys["auto"] in (keys["fp32"], keys["bf16"])  # auto: what it resolved to


def test_explicit_defaults_and_resolved_auto_precision_give_the_same_key():
    run = RunSpec("probe", 8, 0)
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[8])
    explicit = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[8],
                        train_options={"monitor": "val_acc", "batch_size": 16})
    assert spec.run_key(run, "d") == explicit.run_key(run, "d")
    identity = spec.run_identity(run, "d")
    assert identity["train"]["precision"] in ("fp32", "torch.bfloat16") and identity["format"] >= 2


def test_a_store_of_an_older_format_is_refused_with_a_sentence(tmp_path):
    db = tmp_path / "results.sqlite"
    with sqlite3.connect(db) as con:  # what the previous version wrote: runs, no format
        con.executescript("CREATE TABLE runs (key TEXT PRIMARY KEY, strategy TEXT NOT NULL, budget INTEGER, "
                          "seed INTEGER NOT NULL, finished REAL NOT NULL, record TEXT NOT NULL);"
                          "INSERT INTO runs VALUES ('k', 'probe', 8, 0, 0.0, '{}');")
    with pytest.raises(HeadstartError, match=r"holds results in format 1, written by an older headstart.*--out"):
        ResultStore(db)
    ResultStore(tmp_path / "new.sqlite").close()  # a new store takes the current format
    ResultStore(tmp_path / "new.sqlite").close()


def test_the_report_shows_only_the_current_grid(tmp_path):
    task = toy_task()
    run_race(toy_spec(budgets=(4,), seeds=2, strategies=("scratch", "probe")), tmp_path, task=task, **TINY)
    run_race(toy_spec(budgets=(4,), seeds=1, strategies=("probe",)), tmp_path, task=task, **TINY)
    page = write_report(tmp_path).read_text()
    assert "Not shown: 3 run(s)" in page
    import json

    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["strategy"], r["seeds"]) for r in results["table"]] == [("probe", 1)]
    assert results["runs_not_shown"] == 3 and results["chosen_on"].startswith("Chosen on ")


def test_a_users_test_file_is_the_test_set(tmp_path):
    task = toy_task(160)
    test_texts = [task.inputs[0], task.inputs[1], "good movie extra", "bad movie extra", "love it again", "hate it x"]
    test = Task(test_texts, np.array([0, 1, 0, 1, 0, 1]), ("pos", "neg"), "text", "held", "held.csv")
    records = run_race(toy_spec(budgets=(4,), seeds=1, strategies=("probe",)), tmp_path, task=task, test_task=test,
                       **TINY)
    assert records[0]["n_test"] == 6
    with ResultStore(tmp_path / "results.sqlite") as store:
        data = store.get_meta("data")
    assert data["test_source"] == "held.csv" and data["test"] == 6
    assert data["pool"] + data["selection"] == 158  # the two copies of test texts were kept out
    assert "2 examples of toy are exact copies of test examples" in data["notes"][0]
    page = write_report(tmp_path).read_text()
    assert "the test file held.csv" in page and "(from held.csv)" in page


def test_a_test_file_with_unknown_labels_is_refused():
    task = toy_task(40)
    test = Task(["x", "y"], np.array([0, 1]), ("pos", "meh"), "text", "held", "held.csv")
    with pytest.raises(HeadstartError, match=r"The test file held.csv has labels the training data lack: \['meh'\]"):
        run_race(toy_spec(budgets=(4,), seeds=1, strategies=("probe",)), "unused", task=task, test_task=test, **TINY)


def test_a_seed_fixes_the_random_init_and_leaves_the_global_rng_alone(text_task):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    fits = [Adapter(lambda p: tiny_backbone("minilm-l6", p), "scratch", epochs=2, seed=0, precision="fp32",
                    feature_cache=None).fit(text_task) for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), before)
    a, b = (dict(f.model_.named_parameters()) for f in fits)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lpft_probes_on_training_labels_only_and_its_probe_is_a_candidate(text_task):
    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "lp-ft", epochs=2, lr=1e-6, precision="fp32",
                  monitor="val_acc", feature_cache=None).fit(text_task)
    r = clf.result_
    assert any("cross-validation on training only" in n for n in r.notes)
    assert r.records[0].epoch == 0 and r.records[0].train_loss is None  # the probe's solution, scored first
    assert r.best_epoch is not None


def test_the_advisor_sees_only_the_pool(monkeypatch):
    task = toy_task(120)
    pool = make_splits(task, seed=3).pool
    seen = []
    original = Task.subset

    def spy(self, index):
        seen.extend(np.asarray(index).tolist())
        return original(self, index)

    monkeypatch.setattr(Task, "subset", spy)
    monkeypatch.setattr("headstart.race.advisor.create_backbone", lambda name, pretrained, **o: tiny_backbone(name,
                                                                                                              pretrained))
    a = advise(task, "minilm-l6", seed=3, subset=40)
    assert set(seen) <= set(pool.tolist()) and a.examples == len(pool)
