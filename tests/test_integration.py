"""The real packaged weights and datasets, offline (fetched once from their registry packages)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from headstart.backbones import create_backbone
from headstart.data import load_task

pytestmark = pytest.mark.integration
ESPRESSO = 967  # ImageNet-1k class index


def test_minilm_paraphrases_are_closer_than_unrelated_pairs():
    b = create_backbone("minilm-l6")
    e = b.embed(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell today.",
                 "Someone is having a meal."])
    sim = e @ e.T
    assert sim[0, 1] > 0.5 and sim[0, 3] > sim[0, 2] and sim[1, 3] > sim[1, 2] and sim[0, 2] < 0.2


@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_vision_backbones_recognise_espresso(name):
    from skimage import data

    b = create_backbone(name)
    logits = b.source_logits([data.coffee()])
    assert int(logits.argmax()) == ESPRESSO and torch.softmax(logits, 1)[0, ESPRESSO] > 0.5


def test_rotten_tomatoes_is_complete():
    task = load_task("rotten-tomatoes")
    assert len(task) == 12808 and task.counts() == {"fresh": 7403, "rotten": 5405}


def test_cli_lists_packaged_backbones_as_available_offline():
    cmd = [sys.executable, "-m", "headstart.cli", "backbones", "--fetch"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for name in ("minilm-l6", "mobilenetv2", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert "yes (" in line
    families = next(line for line in out.splitlines() if line.startswith("hf: families"))
    assert "deberta-v2" in families and "clip" in families and "swin" in families


def _cli(*args, check=True):
    return subprocess.run([sys.executable, "-m", "headstart.cli", *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    """A small real CSV: 60 rotten-tomatoes reviews per class."""
    import csv

    import numpy as np

    task = load_task("rotten-tomatoes")
    rng = np.random.default_rng(0)
    index = np.concatenate([rng.choice(np.flatnonzero(task.labels == c), 60, replace=False) for c in (0, 1)])
    path = tmp_path_factory.mktemp("csv") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "verdict"])
        w.writerows((task.inputs[i], task.classes[task.labels[i]]) for i in index)
    return path


def test_cli_fit_then_predict_text(tmp_path, reviews_csv):
    import json

    out = tmp_path / "model"
    _cli("fit", str(reviews_csv), "--label-column", "verdict", "--strategy", "lora", "--epochs", "2",
         "--out", str(out), "--quiet")
    saved = json.loads((out / "adapter.json").read_text())
    assert saved["saved_parameters"] < 500_000  # the LoRA matrices and the head (1.5%), not 22.7 M
    rows = json.loads(_cli("predict", str(out), "A triumph.", str(reviews_csv), "--json").stdout)
    assert len(rows) == 121 and {r["label"] for r in rows} <= {"fresh", "rotten"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)

    # deployment: ONNX (LoRA merged into the graph), checked by ONNX Runtime, predicted without torch
    exported = json.loads(_cli("export", str(out), "--out", str(tmp_path / "onnx"), "--json").stdout)
    assert exported["lora_layers_merged"] == 36 and exported["check"]["max_abs_diff"] < 1e-4
    code = ("import json, sys; from headstart.deploy import OnnxClassifier; "
            f"c = OnnxClassifier({str(tmp_path / 'onnx')!r}); p = c.predict_proba(['A triumph.', 'Dull.']); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'p': p.tolist(), "
            "'y': c.predict(['A triumph.']).tolist()}))")
    deployed = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout)
    by_torch = {r["input"]: r for r in json.loads(_cli("predict", str(out), "A triumph.", "Dull.", "--json").stdout)}
    assert not deployed["torch"] and deployed["y"] == [by_torch["A triumph."]["label"]]
    assert abs(deployed["p"][0][1] - by_torch["A triumph."]["probabilities"]["rotten"]) < 1e-3


def test_cli_bad_inputs_end_in_one_sentence(tmp_path, reviews_csv):
    out = tmp_path / "model"
    _cli("fit", str(reviews_csv), "--label-column", "verdict", "--strategy", "probe", "--out", str(out), "--quiet")
    no_text = tmp_path / "x.csv"
    no_text.write_text("id,stars\n1,5\n")
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    for args, message in [((str(out), str(image)), "is an image, but this model reads text"),
                          ((str(out), str(no_text)), "cannot tell which column holds the text"),
                          ((str(tmp_path),), "is not a saved headstart model")]:
        done = _cli("predict", *args, "x" if len(args) == 1 else args[-1], check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert message in done.stderr and done.stderr.count("\n") == 1


def test_compare_on_rotten_tomatoes_finds_that_pretraining_helps(tmp_path):
    import json

    out = _cli("compare", "rotten-tomatoes", "--backbone", "minilm-l6", "--strategies", "scratch,probe",
               "--budgets", "64", "--seeds", "2", "--test-limit", "1000", "--epochs", "4", "--max-length", "64",
               "--no-advice", "--quiet", "--json", "--out", str(tmp_path)).stdout
    result = json.loads(out)
    assert result["pretraining_helps"] is True and (tmp_path / "report.html").exists()
    assert {r["strategy"] for r in result["table"]} == {"scratch", "probe"}


def test_compare_with_the_users_own_test_file(tmp_path, reviews_csv):
    import csv
    import json

    task = load_task("rotten-tomatoes")
    held = tmp_path / "reviews_test.csv"
    with open(reviews_csv, encoding="utf-8") as f:
        first_training_row = list(csv.reader(f))[1]
    with open(held, "w", newline="", encoding="utf-8") as f:  # 40 other reviews, plus one copy of a training one
        w = csv.writer(f)
        w.writerow(["review", "verdict"])
        w.writerows((task.inputs[i], task.classes[task.labels[i]]) for i in range(len(task) - 40, len(task)))
        w.writerow(first_training_row)
    out = _cli("compare", str(reviews_csv), "--test", str(held), "--label-column", "verdict", "--strategies",
               "scratch-small,probe", "--budgets", "16", "--seeds", "1", "--max-length", "32", "--no-advice",
               "--quiet", "--json", "--out", str(tmp_path / "race")).stdout
    result = json.loads(out)
    assert "other held-out examples (from " in result["chosen_on"] and "reviews_test.csv" in result["chosen_on"]
    assert {r["n_test"] for r in result["table"]} == {41}
    page = (tmp_path / "race" / "report.html").read_text()
    assert "the test file" in page and "reviews_test.csv" in page and "exact copies of test examples" in page


def test_advise_gives_a_recipe_from_frozen_features():
    from headstart.race import advise

    a = advise(load_task("rotten-tomatoes"), "minilm-l6", subset=300)
    assert a.size == "large" and a.strategy == "full"  # every large pool gets a full fine-tune, whatever the gap
    assert a.probe_acc_pretrained > a.probe_acc_random and a.logme_pretrained > a.logme_random


def test_vision_fit_on_mnist(tmp_path):
    import json

    out = _cli("fit", "mnist-5k", "--backbone", "mobilenetv2", "--strategy", "partial:2", "--budget", "16",
               "--image-size", "64", "--epochs", "3", "--out", str(tmp_path), "--quiet", "--json").stdout
    assert json.loads(out)["test_accuracy"] > 0.5


def test_headstart_leaves_the_process_as_it_found_it():
    """No process-wide settings: HF_HUB_OFFLINE and the matplotlib backend stay as they were (the global RNG:
    test_verdict.py)."""
    import os

    import matplotlib

    from headstart.backbones import create_backbone
    from headstart.report import plots  # noqa: F401 (importing it must not choose a backend)

    backend = matplotlib.rcParams._get_backend_or_none()
    os.environ.pop("HF_HUB_OFFLINE", None)
    create_backbone("minilm-l6")
    assert "HF_HUB_OFFLINE" not in os.environ
    assert matplotlib.rcParams._get_backend_or_none() == backend
