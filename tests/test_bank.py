"""One body, many adapters: a bank predicts exactly what each folder loaded alone predicts, in any order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headstart import Adapter, AdapterBank
from headstart.cli import main
from headstart.data import Task
from headstart.errors import HeadstartError

from .test_race_backbones import A, B  # registered tiny text encoders

TEXTS = ["good movie", "great film", "love this fun plot", "a great actor", "very good", "so fun", "bad movie",
         "awful film", "hate this dull plot", "a bad actor", "very awful", "so dull"] * 2


def _task(kind: str) -> Task:
    if kind == "sentiment":
        labels, classes = [0] * 6 + [1] * 6, ("pos", "neg")
    elif kind == "length":  # three classes: a head of another size
        labels, classes = [min(2, len(t.split()) - 2) for t in TEXTS[:12]], ("two", "three", "four+")
    else:  # which word starts it
        labels, classes = [int(t.split()[0] in ("a", "very", "so")) for t in TEXTS[:12]], ("content", "function")
    return Task(TEXTS, np.array(labels * 2), classes, "text", kind)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank")
    specs = {"sentiment": ("lora", {}), "length": ("lora", {"rank": 4}), "start": ("probe", {}),
             "biases": ("bitfit", {}), "top": ("partial:1", {})}
    folders = {}
    for name, (spec, options) in specs.items():
        task = _task("sentiment" if name in ("biases", "top") else name)
        clf = Adapter(A, spec, feature_cache=None, epochs=3, lr=1e-2, seed=1, **options).fit(task, val=task)
        folders[name] = clf.save(root / name)
    return folders


def test_every_member_predicts_what_its_folder_predicts_alone_in_any_order(saved):
    bank = AdapterBank.load(list(saved.values()))
    assert bank.names == list(saved) and len(bank) == 5
    alone = {name: Adapter.load(folder).predict_proba(TEXTS) for name, folder in saved.items()}
    for name in ["sentiment", "start", "length", "biases", "sentiment", "top", "length", "start", "biases"]:
        np.testing.assert_allclose(bank[name].predict_proba(TEXTS), alone[name], atol=1e-5, err_msg=name)
        assert bank.active == name
    labels = bank.predict(TEXTS[:3])
    assert set(labels) == set(saved) and list(labels["length"]) == list(bank["length"].predict(TEXTS[:3]))
    assert set(bank["length"].classes_) == {"two", "three", "four+"}


def test_the_body_is_built_once(saved, monkeypatch):
    import headstart.persist as persist

    built = []
    original = persist.resolve_backbone
    monkeypatch.setattr(persist, "resolve_backbone", lambda *a, **k: built.append(a) or original(*a, **k))
    AdapterBank.load([saved["sentiment"], saved["length"], saved["start"]])
    assert len(built) == 1


def test_members_are_read_only_and_names_are_checked(saved, tmp_path):
    bank = AdapterBank.load([saved["sentiment"], saved["start"]], names=["s", "t"])
    with pytest.raises(HeadstartError, match=r"^s is served from a bank that shares its body .* to train, save"):
        bank["s"].save(tmp_path / "again")
    with pytest.raises(HeadstartError, match=r"^No model named 'x' in this bank; it holds s, t\.$"):
        bank["x"]
    with pytest.raises(HeadstartError, match="Give one distinct name per model folder"):
        AdapterBank.load([saved["sentiment"], saved["start"]], names=["s", "s"])


def test_models_that_cannot_share_a_body_are_refused(saved, tmp_path):
    task = _task("sentiment")
    other = Adapter(B, "probe", feature_cache=None).fit(task, val=task).save(tmp_path / "other")
    with pytest.raises(HeadstartError, match=rf"^{other} was saved for backbone {B} .* a bank serves models of one "
                                             "backbone; load the others on their own\\.$"):
        AdapterBank.load([saved["start"], other])
    ia3 = Adapter(A, "ia3", feature_cache=None, epochs=1).fit(task, val=task).save(tmp_path / "ia3")
    with pytest.raises(HeadstartError, match=r"^Models of ia3 and lora cannot share one body"):
        AdapterBank.load([saved["sentiment"], ia3])
    scratch = Adapter(A, "scratch", feature_cache=None, epochs=1).fit(task, val=task).save(tmp_path / "scratch")
    with pytest.raises(HeadstartError, match=r"was trained from scratch \(scratch\): its whole body is its own"):
        AdapterBank.load([saved["start"], scratch])
    with pytest.raises(HeadstartError, match="Give a list of model folders"):
        AdapterBank.load(str(saved["start"]))


def test_a_damaged_member_is_named(saved, tmp_path):
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(saved["length"], copy)
    (copy / "adapter.safetensors").write_bytes(b"not tensors")
    with pytest.raises(HeadstartError, match=rf"^{copy} is damaged"):
        AdapterBank.load([saved["sentiment"], copy])


def test_predict_with_several_adapters_labels_each_input_with_every_model(saved, capsys):
    folders = f"{saved['sentiment']},{saved['length']}"
    assert main(["predict", "--adapters", folders, "good movie", "so dull", "--json"]) in (0, None)
    rows = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in rows] == ["good movie", "so dull"]
    bank = AdapterBank.load([saved["sentiment"], saved["length"]])
    expected = bank.predict(["good movie", "so dull"])
    for i, row in enumerate(rows):
        assert {m: v["label"] for m, v in row["models"].items()} == {m: expected[m][i] for m in expected}
    assert main(["predict", "--adapters", folders, "good movie"]) in (0, None)
    line = capsys.readouterr().out.strip()
    assert line.startswith("sentiment=") and "\tlength=" in line and line.endswith("\tgood movie")
    assert main(["predict", "--adapters", folders]) == 2
    assert "Nothing to predict" in capsys.readouterr().err


def test_combined_lora_members_run_on_the_exact_sum_of_their_updates(saved):
    bank = AdapterBank.load([saved["sentiment"], saved["length"], saved["start"]])
    own = {n: bank[n].predict_proba(TEXTS) for n in ("sentiment", "length")}
    name = bank.combine(["sentiment", "length"], weights=[1.0, 0.0])  # the second's update weighted out
    assert name == "sentiment__length"
    np.testing.assert_allclose(bank["sentiment"].predict_proba(TEXTS), own["sentiment"], atol=1e-5)
    assert not np.allclose(bank["length"].predict_proba(TEXTS), own["length"], atol=1e-4)  # its head, another body
    bank.combine(["sentiment", "length"], weights=[0.0, 1.0])
    np.testing.assert_allclose(bank["length"].predict_proba(TEXTS), own["length"], atol=1e-5)
    bank.combine(["sentiment", "length"])
    both = bank["sentiment"].predict_proba(TEXTS)
    assert not np.allclose(both, own["sentiment"], atol=1e-4)
    bank.separate()
    for n in own:
        np.testing.assert_allclose(bank[n].predict_proba(TEXTS), own[n], atol=1e-5)
    with pytest.raises(HeadstartError, match=r"^start is probe: only lora adapters add up"):
        bank.combine(["sentiment", "start"])
    with pytest.raises(HeadstartError, match=r"^Combine two or more distinct members"):
        bank.combine(["sentiment"])


def test_members_whose_method_adds_modules_to_the_blocks_switch_with_them(tmp_path):
    """Bottleneck adapters, soft prompts and prefixes are modules of their own in the blocks: each member's are
    attached while it is active, so every member (two prefixes of different sizes too, beside a LoRA model and a
    probe) predicts exactly what its folder predicts alone, in any order."""
    specs = {"bottleneck": ("adapter", {}), "soft": ("prompt", {"tokens": 3}), "keys": ("prefix", {"tokens": 2}),
             "keys_long": ("prefix", {"tokens": 5}), "lora": ("lora", {}), "probe": ("probe", {})}
    folders = {}
    for i, (name, (spec, options)) in enumerate(specs.items()):
        task = _task(("sentiment", "length", "start")[i % 3])
        clf = Adapter(A, spec, feature_cache=None, epochs=2, lr=1e-2, seed=i, **options).fit(task, val=task)
        folders[name] = clf.save(tmp_path / name)
    bank = AdapterBank.load(list(folders.values()))
    alone = {name: Adapter.load(folder).predict_proba(TEXTS) for name, folder in folders.items()}
    assert len({round(float(p[0, 0]), 6) for p in alone.values()}) == len(alone)  # six different models
    for name in ["keys", "bottleneck", "keys_long", "soft", "lora", "keys", "probe", "soft", "bottleneck"]:
        np.testing.assert_allclose(bank[name].predict_proba(TEXTS), alone[name], atol=1e-5, err_msg=name)
