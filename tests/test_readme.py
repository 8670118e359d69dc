"""The README's examples on a user's CSV, run as written (copied out of README.md, not retyped here) on
300 real reviews: the commands a new user pastes first must work on a dataset of a few hundred examples."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from headstart import load_task

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"
#: the README's sections whose examples run here: the race, and fit/predict/save/load with export and deploy
#: (the lab, a cluster and multi-process launches have their own tests)
RUN_SECTIONS = ("The race", "One model")
USER_FILES = ("reviews.csv", "reviews_test.csv", "new_reviews.csv", "model/", "lora-model/", "model-onnx/",
              "model-merged/")


def readme_examples() -> list[tuple[str, str]]:
    """("bash", command) and ("python", code) in README order, for the examples that use the user's files.

    A bash block contributes each `headstart ...` command (backslash continuations joined, comments
    dropped); a Python block that imports headstart contributes its whole text."""
    examples = []
    text = README.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    chosen = "".join(s for s in sections if s.startswith(RUN_SECTIONS))
    for lang, body in re.findall(r"```(bash|python)\n(.*?)```", chosen, re.S):
        if lang == "python":
            if "from headstart" in body and any(f in body for f in USER_FILES):
                examples.append(("python", body))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith("headstart ") and any(f in command for f in USER_FILES):
                examples.append(("bash", command))
    return examples


def _write(path: Path, rows, header=("text", "label")) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    """A user's folder: reviews.csv (300 real reviews, 150 a class), reviews_test.csv (60 others) and
    new_reviews.csv (five unlabelled ones)."""
    task = load_task("rotten-tomatoes")
    rng = np.random.default_rng(0)
    picked = [rng.permutation(np.flatnonzero(task.labels == c))[:185] for c in (0, 1)]
    train = np.concatenate([p[:150] for p in picked])
    test = np.concatenate([p[150:180] for p in picked])
    new = np.concatenate([p[180:] for p in picked])[:5]
    folder = tmp_path_factory.mktemp("user")
    _write(folder / "reviews.csv", ((task.inputs[i], task.classes[task.labels[i]]) for i in train))
    _write(folder / "reviews_test.csv", ((task.inputs[i], task.classes[task.labels[i]]) for i in test))
    _write(folder / "new_reviews.csv", ((task.inputs[i],) for i in new), header=("text",))
    return folder


def test_the_readme_names_the_examples_this_test_runs():
    kinds = [kind for kind, _ in readme_examples()]
    commands = " ".join(c for k, c in readme_examples() if k == "bash")
    assert kinds.count("python") == 3  # fit/save/load, several models on one body, and the torch-free deployment
    for verb in ("compare", "advise", "fit", "predict", "export"):
        assert f"headstart {verb} " in commands


def test_readme_examples_run_as_written_on_300_reviews(user_folder):
    headstart = [sys.executable, "-m", "headstart.cli"]
    for kind, example in readme_examples():
        cmd = headstart + shlex.split(example)[1:] if kind == "bash" else [sys.executable, "-c", example]
        done = subprocess.run(cmd, cwd=user_folder, capture_output=True, text=True)
        assert done.returncode == 0, f"README example failed: {example}\n{done.stderr[-2000:]}"

    race = json.loads((user_folder / "runs/reviews/results.json").read_text())
    assert {r["strategy"] for r in race["table"]} == {"scratch-small", "probe", "partial:2"}
    assert len({r["budget"] for r in race["table"]}) == 3
    assert all(r["seeds"] == 2 for r in race["table"])
    own = json.loads((user_folder / "runs/reviews-own-test/results.json").read_text())
    assert {r["n_test"] for r in own["table"]} == {60}
    variants = json.loads((user_folder / "runs/variants/results.json").read_text())
    assert {r["strategy"] for r in variants["table"]} == {"full", "full[guard=l2sp]", "coral"}
    for folder in ("runs/reviews", "runs/reviews-own-test", "runs/variants"):
        assert (user_folder / folder / "report.html").exists()
    assert (user_folder / "model/adapter.json").exists() and (user_folder / "lora-model/adapter.json").exists()
    assert (user_folder / "model-merged/adapter.json").exists()
    assert json.loads((user_folder / "model-onnx/deploy.json").read_text())
