"""How much pretrained competence a run kept (``race/forgetting.py``): on every run that moves a pretrained body, in
the table, ``--json``, the report and the lab's records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from headstart.cli import main
from headstart.data import Task
from headstart.race import RaceSpec, run_race, summarize
from headstart.race.findings import least_forgetting
from headstart.race.forgetting import measure_forgetting, reference_name
from headstart.train import AdaptedModel, FeatureCache

from .conftest import tiny_backbone
from .race_child import toy_task
from .test_race_backbones import A


def _held(n: int = 20) -> Task:
    return toy_task(n)


def test_an_unmoved_body_keeps_everything_and_has_not_drifted():
    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    out = measure_forgetting(model, lambda p: tiny_backbone("minilm-l6", p), {}, _held(), reference_name(
        "auto", "text", "toy"), FeatureCache())
    assert out["measure"] == "probe" and out["kept"] == pytest.approx(1.0) and abs(out["drift"]) < 1e-6
    assert out["reference_acc"] == out["reference_acc_pretrained"] > 0.25  # 4 topics: above chance
    assert "on reference_texts.csv (a probe, 48 examples)" in out["what"]


def test_a_moved_body_keeps_less_and_drifts_and_images_are_judged_by_their_pretraining_classifier():
    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.5 * torch.randn_like(p))
    out = measure_forgetting(model, lambda p: tiny_backbone("minilm-l6", p), {}, _held(), None, FeatureCache())
    assert out["drift"] > 0.01 and "kept" not in out  # no reference: the drift alone
    rng = np.random.default_rng(0)
    images = Task([rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(12)], np.array([0, 1] * 6),
                  ("a", "b"), "image")
    vision = AdaptedModel(tiny_backbone("mobilenetv2"), 2)
    same = measure_forgetting(vision, lambda p: tiny_backbone("mobilenetv2", p), {}, images, None, FeatureCache())
    assert same["measure"] == "agreement" and same["kept"] == 1.0 and "pretraining predictions" in same["what"]


def test_every_run_that_moves_a_pretrained_body_records_what_it_kept(tmp_path, capsys):
    spec = RaceSpec("toy", A, strategies=["scratch-small", "probe", "lora", "full"], budgets=[8], seeds=2,
                    train_options={"epochs": 2, "precision": "fp32"})
    records = run_race(spec, tmp_path, task=toy_task(), progress=False)
    by = {r["strategy"]: r for r in records if r["seed"] == 0}
    assert "forgetting" not in by["probe"] and "forgetting" not in by["scratch-small"]
    for s in ("lora", "full"):
        f = by[s]["forgetting"]
        assert 0 <= f["drift"] <= 2 and f["kept"] > 0 and f["n_held"] == 32 and f["measure"] == "probe"
    rows = {r.strategy: r for r in summarize(records)}
    assert rows["probe"].kept_mean is None and rows["full"].kept_mean is not None
    assert rows["full"].kept_mean == pytest.approx(np.mean([r["forgetting"]["kept"] for r in records
                                                            if r["strategy"] == "full"]))
    from headstart.report import write_report

    page = write_report(tmp_path).read_text()
    assert "<th>kept</th>" in page and "how much pretrained competence a run kept" in page
    summary = json.loads((tmp_path / "results.json").read_text())
    assert {r["strategy"]: r["kept_mean"] for r in summary["table"]}["probe"] is None
    assert "kept" in (tmp_path / "runs.csv").read_text().splitlines()[0]


def test_the_race_table_shows_kept_and_a_reference_that_cannot_be_had_is_said_not_failed(toy_csv, tmp_path, capsys):
    argv = ["compare", str(toy_csv), "--backbone", A, "--strategies", "probe,full", "--budgets", "8", "--seeds", "1",
            "--epochs", "1", "--no-advice", "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("strategy"))
    assert header.split()[-1] == "kept" and "kept: how much pretrained competence a run kept" in out
    assert main(argv[:-2] + ["--reference", "no-such-example", "--out", str(tmp_path / "r2")]) == 0
    records = run_race(RaceSpec(str(toy_csv), A, strategies=["probe", "full"], budgets=[8], seeds=1,
                                train_options={"epochs": 1}, reference="no-such-example"), tmp_path / "r2",
                       progress=False)
    full = next(r for r in records if r["strategy"] == "full")
    assert "no-such-example" in full["forgetting"]["error"]


def test_least_forgetting_names_the_strategy_that_kept_most_among_those_level_on_selection():
    from headstart.race.analysis import Row

    def row(name, sel, kept):
        return Row(name, 128, 128.0, 3, False, sel, 0.01, sel, 0.01, sel, 0.01, 1000, 1000, 10, 1.0, None, 1.0, 0.0,
                   0.0, kept_mean=kept, kept_std=0.0, drift_mean=0.1, kept_what="of X")
    rows = [row("full", 0.80, 0.90), row("lora", 0.795, 0.98), row("probe", 0.70, None), row("lldr", 0.60, 0.99)]
    line = least_forgetting(rows)
    assert line.startswith("Forgetting at equal accuracy: of the strategies level on selection at 128/class")
    assert "lora kept the most pretrained competence, 98% of X (full 90%)" in line and "lldr" not in line
    assert least_forgetting([row("full", 0.8, 0.9), row("probe", 0.8, None)]) is None
