"""Learning tasks one after another (``warm_start``): class- and domain-incremental fits, the previous task's head as
what guards keep, and the rehearsal buffer (``replay``), through save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.data import Task
from headstart.errors import HeadstartError

from .conftest import tiny_backbone

A_TEXTS = ["good movie", "great film", "love this fun plot", "a great actor", "very good", "so fun", "bad movie",
           "awful film", "hate this dull plot", "a bad actor", "very awful", "so dull"]
B_TEXTS = ["is it good", "was the film fun", "did you love it", "why so dull", "what a plot", "how bad is it",
           "it was fine", "okay I guess", "so so", "meh", "not bad not great", "fine film"]


def TEXT(pretrained: bool = True):
    return tiny_backbone("minilm-l6", pretrained)


def _a() -> Task:
    return Task(A_TEXTS * 2, np.array(([0] * 6 + [1] * 6) * 2), ("pos", "neg"), "text", "first")


def _b() -> Task:  # two new classes
    return Task(B_TEXTS * 2, np.array(([0] * 6 + [1] * 6) * 2), ("question", "mixed"), "text", "second")


def test_a_continued_fit_on_new_classes_grows_the_head_and_keeps_the_earlier_rows():
    clf = Adapter(TEXT, "probe", feature_cache=None, warm_start=True).fit(_a())
    old = clf.model_.head.weight.detach().clone()
    clf.fit(_b())
    assert list(clf.classes_) == ["pos", "neg", "question", "mixed"]
    assert torch.equal(clf.model_.head.weight[:2], old)  # the probe had no example of pos or neg: their rows stay
    assert clf.predict_proba(B_TEXTS).shape == (12, 4) and set(clf.predict(B_TEXTS)) <= set(clf.classes_)
    assert clf.heads_ == {}


def test_integer_labels_stay_integers_in_a_continued_fit():
    clf = Adapter(TEXT, "probe", feature_cache=None, warm_start=True).fit(A_TEXTS, [0] * 6 + [1] * 6)
    clf.fit(B_TEXTS, [2] * 6 + [3] * 6)
    assert clf.classes_.tolist() == [0, 1, 2, 3] and isinstance(clf.predict(["so so"])[0], np.integer)


def test_a_continued_fit_on_the_same_classes_is_domain_incremental_and_guards_keep_the_previous_head():
    clf = Adapter(TEXT, "full", feature_cache=None, epochs=2, lr=1e-3, warm_start=True, guard="lwf").fit(_a(), val=_a())
    assert "keeps the similarity structure of its features" in clf.result_.stages[-1]["objective"]
    same = Task(B_TEXTS * 2, np.array(([0] * 6 + [1] * 6) * 2), ("pos", "neg"), "text", "second")
    clf.fit(same, val=same)
    assert list(clf.classes_) == ["pos", "neg"]
    assert "keeps the previous task's head (2 classes)" in clf.result_.stages[-1]["objective"]


def test_replay_keeps_a_balanced_buffer_rehearses_it_and_saves_it_sized_and_checksummed(tmp_path):
    clf = Adapter(TEXT, "probe", feature_cache=None, warm_start=True, replay=2, seed=3).fit(_a())
    assert clf.memory_.counts() == {"pos": 2, "neg": 2}
    assert all(t in A_TEXTS[:6] if y == 0 else t in A_TEXTS[6:] for t, y in zip(clf.memory_.inputs,
                                                                                 clf.memory_.labels))
    clf.save(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter.json").read_text())
    assert config["memory"]["bytes"] == (tmp_path / "a" / "memory.json").stat().st_size > 0
    again = Adapter.load(tmp_path / "a", backbone=TEXT)
    assert list(again.memory_.inputs) == list(clf.memory_.inputs)
    again.set_params(warm_start=True, replay=2).fit(_b())
    assert again.memory_.counts() == {"pos": 2, "neg": 2, "question": 2, "mixed": 2}
    assert again.result_.stages  # the rehearsed examples trained beside the new ones:
    rows = again.model_.head.weight.detach()
    assert not torch.equal(rows[:2], clf.model_.head.weight)  # pos and neg were in the probe's examples again
    (tmp_path / "a" / "memory.json").write_text('{"inputs": [], "labels": []}\n')
    with pytest.raises(HeadstartError, match=r"is damaged \(memory.json, its rehearsal buffer, is missing or does not "
                                             r"match its checksum\)"):
        Adapter.load(tmp_path / "a", backbone=TEXT)


def test_rehearsal_images_are_kept_as_arrays_and_saved(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(8)]
    task = Task(images, np.array([0, 1] * 4), ("a", "b"), "image", "imgs")
    clf = Adapter(lambda p: tiny_backbone("mobilenetv2", p), "probe", feature_cache=None, replay=1).fit(task)
    clf.save(tmp_path / "m")
    again = Adapter.load(tmp_path / "m", backbone=lambda p: tiny_backbone("mobilenetv2", p))
    assert len(again.memory_) == 2 and all(np.array_equal(x, y) for x, y in zip(again.memory_.inputs,
                                                                                clf.memory_.inputs))


def test_replay_without_a_buffer_and_replay_across_task_heads_are_one_sentence_each():
    clf = Adapter(TEXT, "probe", feature_cache=None, warm_start=True).fit(_a())
    with pytest.raises(HeadstartError, match=r"^replay rehearses the examples a model kept from its earlier task, and "
                                             r"this one kept none: fit the earlier task with replay=N too"):
        clf.set_params(replay=2).fit(_b())
    clf = Adapter(TEXT, "probe", feature_cache=None, warm_start=True, replay=2, incremental="task").fit(_a())
    with pytest.raises(HeadstartError, match=r"^replay rehearses earlier classes through one head; with "
                                             r"incremental='task'"):
        clf.fit(_b())


@pytest.mark.parametrize(("params", "message"), [
    ({"replay": -1}, "The 'replay' parameter of Adapter must be a non-negative integer"),
    ({"replay": 1.5}, "The 'replay' parameter of Adapter must be a non-negative integer"),
    ({"incremental": "domain"}, "The 'incremental' parameter of Adapter must be 'class' or 'task'. Got 'domain'"),
])
def test_bad_continual_parameters_are_named(params, message):
    with pytest.raises(HeadstartError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        Adapter(TEXT, "probe", feature_cache=None, **params).fit(_a())


def _csv(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def _task_files(tmp_path):
    """Two tasks as CSV files: sentiment, then two new classes (questions and lukewarm texts), 60 examples each."""
    rng = np.random.default_rng(0)
    a = [(f"{rng.choice(['good movie', 'great fun', 'love it'])} {i}", "pos") if i % 2 == 0 else
         (f"{rng.choice(['bad movie', 'awful film', 'hate it'])} {i}", "neg") for i in range(60)]
    b = [(f"{rng.choice(['is it good', 'was it fun', 'why so'])} {i}", "question") if i % 2 == 0 else
         (f"{rng.choice(['it was fine', 'so so', 'meh'])} {i}", "mixed") for i in range(60)]
    return _csv(tmp_path / "a.csv", a), _csv(tmp_path / "b.csv", b)


def test_the_continual_command_reports_the_accuracy_matrix_and_resumes(tmp_path, capsys):
    from headstart.cli import main
    from tests.test_race_backbones import A as BACKBONE

    a, b = _task_files(tmp_path)
    argv = ["continual", a, b, "--backbone", BACKBONE, "--strategy", "full", "--settings", "none,ewc,replay=2",
            "--budget", "8", "--seeds", "2", "--epochs", "2", "--out", str(tmp_path / "cl"), "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["setting"] for s in out["settings"]] == ["none", "ewc", "replay=2"] and len(out["runs"]) == 6
    for run in out["runs"]:
        matrix = run["matrix"]
        assert [len(r) for r in matrix] == [1, 2] and all(0 <= v <= 1 for r in matrix for v in r)
        assert run["bwt"] == pytest.approx(matrix[1][0] - matrix[0][0])
        assert run["avg_acc"] == pytest.approx((matrix[1][0] + matrix[1][1]) / 2)
        assert run["classes"] == ["neg", "pos", "mixed", "question"]
        assert (run["memory_bytes"] > 0) == (run["setting"] == "replay=2")
    rows = (tmp_path / "cl" / "results.jsonl").read_text().splitlines()
    assert main(argv) == 0  # resumed: every sequence is read back, none is trained again
    again = json.loads(capsys.readouterr().out)
    assert again["runs"] == out["runs"] and (tmp_path / "cl" / "results.jsonl").read_text().splitlines() == rows
    assert main(argv[:-2] + ["--budget", "4"]) == 2
    assert "holds a continual run with other settings (budget differ)" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--settings", "nothing"], "--settings: 'nothing' is not a setting; use none, a guard (ewc, l2sp, lwf), replay=N"),
    (["--settings", "replay=0"], "--settings: 'replay=0' keeps a number of examples per class: replay=N with N at "),
    (["--settings", "ewc,ewc"], "--settings names ewc twice"),
    (["--strategy", "probe", "--settings", "ewc"], "Strategy 'probe' has no option 'guard'"),
])
def test_bad_continual_settings_are_one_sentence(tmp_path, capsys, extra, message):
    from headstart.cli import main
    from tests.test_race_backbones import A as BACKBONE

    a, b = _task_files(tmp_path)
    assert main(["continual", a, b, "--backbone", BACKBONE, "--out", str(tmp_path / "cl"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + message) and "Traceback" not in err


def test_one_task_is_not_a_sequence(tmp_path, capsys):
    from headstart.cli import main

    a, _ = _task_files(tmp_path)
    assert main(["continual", a, "--out", str(tmp_path / "cl")]) == 2
    assert "give at least two (A.csv B.csv)" in capsys.readouterr().err


def test_fit_from_a_saved_model_continues_it_and_rehearses_its_buffer(tmp_path, capsys):
    from headstart.cli import main
    from tests.test_race_backbones import A as BACKBONE

    a, b = _task_files(tmp_path)
    assert main(["fit", a, "--backbone", BACKBONE, "--strategy", "probe", "--budget", "8", "--replay", "3",
                 "--out", str(tmp_path / "m1"), "--quiet", "--json"]) == 0
    capsys.readouterr()
    assert main(["fit", b, "--from", str(tmp_path / "m1"), "--strategy", "full[guard=ewc]", "--epochs", "1",
                 "--budget", "8", "--replay", "3", "--out", str(tmp_path / "m2"), "--quiet", "--json"]) == 0
    capsys.readouterr()
    model = Adapter.load(tmp_path / "m2")
    assert list(model.classes_) == ["neg", "pos", "mixed", "question"]
    assert model.memory_.counts() == {"neg": 3, "pos": 3, "mixed": 3, "question": 3}
    assert "ewc × 1 (Fisher of the previous task's head (2 classes))" in model.result_.stages[-1]["objective"]
    assert main(["fit", b, "--from", str(tmp_path / "m1"), "--backbone", BACKBONE, "--out", str(tmp_path / "m3")]) == 2
    assert "--backbone cannot change the model --from" in capsys.readouterr().err
    assert main(["fit", b, "--incremental", "task", "--backbone", BACKBONE, "--out", str(tmp_path / "m4")]) == 2
    assert "--incremental says what a continued fit does with new classes" in capsys.readouterr().err
    assert main(["fit", b, "--from", str(tmp_path / "m2"), "--replay", "-1", "--out", str(tmp_path / "m5")]) == 2
    assert "--replay" in capsys.readouterr().err
