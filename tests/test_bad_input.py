"""Bad input, damaged files and concurrent use: one clear sentence, never a traceback or a silently wrong answer.

Property-based tests (Hypothesis) fuzz the readers, ``--set`` parsing and model loading: whatever the
input, the only exception that may escape is ``HeadstartError``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from headstart import Adapter
from headstart.cli_predict import expand_inputs
from headstart.data import Task, load_task
from headstart.errors import HeadstartError
from headstart.options import parse_options
from headstart.race import run_race
from headstart.race.runner import race_lock
from headstart.train import AdaptedModel, FeatureCache

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = lambda p: tiny_backbone("minilm-l6", p)  # noqa: E731


# -- the readers --------------------------------------------------------------------------------------------
@FUZZ
@given(body=st.binary(max_size=400) | st.lists(st.sampled_from(list('ab,"\n\r\x00\t{}:[]') + ["text", "label"]),
                                               max_size=40).map(lambda parts: "".join(parts).encode()),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_any_bytes_in_a_table_file_load_or_end_in_a_sentence(tmp_path, body, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(body)
    try:
        task = load_task(path)
    except HeadstartError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        assert len(task) > 0 and len(task.classes) >= 2


@FUZZ
@given(rows=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=8)), max_size=12))
def test_any_rows_of_text_and_label_load_or_end_in_a_sentence(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows), encoding="utf-8")
    try:
        task = load_task(path)
    except HeadstartError:
        return
    assert all(t.strip() for t in task.inputs)  # empty texts never train


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.binary(max_size=200)), max_size=6))
def test_any_files_in_an_image_folder_load_or_end_in_a_sentence(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("images")
    for i, (cls, data) in enumerate(files):
        (root / cls).mkdir(exist_ok=True)
        (root / cls / f"{i}.png").write_bytes(data)
    try:
        task = load_task(root)
    except HeadstartError:
        return
    assert all(n > 0 for n in task.counts().values())  # an empty class never becomes a class


def _png(path: Path, value: int) -> None:
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_an_empty_class_folder_is_dropped_with_a_warning(tmp_path, caplog):
    for cls in ("cat", "dog", "empty"):
        (tmp_path / cls).mkdir()
    for i in range(3):
        _png(tmp_path / "cat" / f"{i}.png", 10 * i)
        _png(tmp_path / "dog" / f"{i}.png", 100 + 10 * i)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    task = load_task(tmp_path)
    assert task.classes == ("cat", "dog")
    assert "dropped class folder 'empty': no readable images in it" in caplog.text


def test_a_truncated_image_counts_as_unreadable(tmp_path):
    from headstart.data import describe

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.jpg")
    broken = tmp_path / "a" / "0.jpg"
    broken.write_bytes(broken.read_bytes()[:300])  # a header check alone passes this file
    task = load_task(tmp_path)
    assert len(task) == 5 and "skipped 1 unreadable" in task.notes[0]
    arrays = Task([str(broken), str(tmp_path / "b" / "0.jpg")], np.array([0, 1]), ("a", "b"), "image")
    assert describe(arrays)["unreadable_images"] == [str(broken)]


def test_empty_texts_are_dropped_and_named(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\n  ,neg\nbad,neg\n,pos\nfine,pos\n", encoding="utf-8")
    task = load_task(path)
    assert len(task) == 3 and "dropped 2 rows 3, 5 with an empty 'text'" in caplog.text


def test_labels_equal_up_to_case_are_reported_and_merged_on_request(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,pos\nb,Pos \nc,neg\nd,neg\ne,pos\n", encoding="utf-8")
    assert load_task(path).classes == ("Pos", "neg", "pos")
    assert "labels 'Pos ' / 'pos' differ only in case or spaces and are kept as separate classes" in caplog.text
    assert load_task(path, normalize_labels=True).classes == ("neg", "pos")


def test_an_unknown_encoding_is_a_sentence(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,x\nb,y\n")
    with pytest.raises(HeadstartError, match="Unknown encoding 'utf-99'; use one Python knows"):
        load_task(path, encoding="utf-99")


# -- --set ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pairs,strategies,expected", [
    (["lr=1e-3", "epochs=4", "augment=yes", "head_lr=none"], ["full"],
     {"lr": 1e-3, "epochs": 4, "augment": True, "head_lr": None}),
    (["rank=4", "alpha=8"], ["lora"], {"rank": 4, "alpha": 8.0}),
    (["C_grid=0.1,1,10"], ["probe"], {"C_grid": (0.1, 1.0, 10.0)}),
])
def test_set_values_take_their_declared_types(pairs, strategies, expected):
    assert parse_options(pairs, strategies) == expected


@pytest.mark.parametrize("pairs,strategies,message", [
    (["lr=abc"], ["full"], "--set lr='abc': lr takes a number or none. Example: --set lr=0.001."),
    (["epochs=2.5"], ["full"], "--set epochs='2.5': epochs takes a whole number or none."),
    (["rank=4"], ["probe"], "--set rank: no such option for probe. Options: C_grid,"),
    (["augment=maybe"], ["full"], "--set augment='maybe': augment takes true or false."),
    (["lr"], ["full"], "--set takes KEY=VALUE (e.g. --set rank=4); got 'lr'."),
])
def test_bad_set_values_name_the_option_and_the_fix(pairs, strategies, message):
    with pytest.raises(HeadstartError) as err:
        parse_options(pairs, strategies)
    assert str(err.value).startswith(message)


@FUZZ
@given(key=st.sampled_from(["lr", "epochs", "rank", "augment", "C_grid", "precision", "seed", "x"]),
       value=st.text(max_size=12))
def test_any_set_value_parses_or_ends_in_a_sentence(key, value):
    try:
        parse_options([f"{key}={value}"], ["lora", "probe"])
    except HeadstartError:
        pass


# -- predict's inputs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,message", [
    ("reviews_typo.csv", "reviews_typo.csv does not exist; pass texts or a CSV/TSV/JSONL file."),
    ("{folder}", "is a folder, but this model reads text"),
    ("photo.png", "photo.png does not exist"),
])
def test_path_like_inputs_to_a_text_model_are_never_classified_as_text(tmp_path, value, message):
    with pytest.raises(HeadstartError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_inputs([value.format(folder=tmp_path)], "text", None, "utf-8")
    assert expand_inputs(["great film, would watch again."], "text", None, "utf-8") == [
        "great film, would watch again."]


# -- damaged files ------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path, text_task):
    Adapter(TEXT, "partial:1", feature_cache=None, epochs=1).fit(text_task, val=text_task).save(tmp_path / "m")
    return tmp_path / "m"


DAMAGES = {"truncated": lambda b: b[: len(b) // 2], "same size, other bytes": lambda b: b[:-40] + b"x" * 40}


@pytest.mark.parametrize("name", ["adapter.safetensors", "adapter.json"])
@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_model_folder_is_refused_with_a_sentence(saved, name, damage):
    path = saved / name
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    with pytest.raises(HeadstartError, match=r"is damaged \(.*\); save the model again"):
        Adapter.load(saved, backbone=TEXT)


def test_a_model_folder_missing_a_tensor_is_refused(saved):
    from safetensors.torch import load_file, save_file

    from headstart.fetch import sha256_file

    tensors = load_file(str(saved / "adapter.safetensors"))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(saved / "adapter.safetensors"))
    config = json.loads((saved / "adapter.json").read_text())
    config["weights_sha256"] = sha256_file(saved / "adapter.safetensors")  # a consistent but incomplete folder
    from headstart.persist import _checksum

    config["checksum"] = _checksum(config)
    (saved / "adapter.json").write_text(json.dumps(config))
    with pytest.raises(HeadstartError, match="tensors missing from adapter.safetensors"):
        Adapter.load(saved, backbone=TEXT)


@FUZZ
@given(data=st.binary(max_size=300), which=st.sampled_from(["adapter.safetensors", "adapter.json"]))
def test_any_bytes_in_a_model_folder_load_or_end_in_a_sentence(tmp_path_factory, data, which):
    folder = tmp_path_factory.mktemp("model")
    (folder / "adapter.safetensors").write_bytes(b"")
    (folder / "adapter.json").write_text("{}")
    (folder / which).write_bytes(data)
    with pytest.raises(HeadstartError):
        Adapter.load(folder, backbone=TEXT)


def test_a_saved_model_names_no_local_path(saved):
    text = (saved / "adapter.json").read_text()
    assert str(Path.home()) not in text and "/tmp" not in text


def test_a_model_folder_moved_to_another_cache_path_loads(tmp_path, text_task):
    """Identity holds the tokenizer by content: the same files in another place (another machine's cache) load."""
    def located(where):
        def build(pretrained):
            backbone = TEXT(pretrained)
            backbone.tokenizer.name_or_path = where
            return backbone
        return build

    clf = Adapter(located("/home/alice/.cache/headstart/minilm"), "probe", feature_cache=None).fit(text_task)
    clf.save(tmp_path / "m")
    again = Adapter.load(tmp_path / "m", backbone=located("/srv/bob/cache/minilm"))
    np.testing.assert_array_equal(again.predict_proba(text_task), clf.predict_proba(text_task))
    assert "alice" not in (tmp_path / "m" / "adapter.json").read_text()


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_feature_cache_shard_is_recomputed_with_a_warning(tmp_path, text_task, damage, caplog):
    model = AdaptedModel(TEXT(True), 2)
    first = FeatureCache(tmp_path).states(model, model.features_start, text_task, range(len(text_task)))
    (shard,) = list(tmp_path.rglob("*.safetensors"))
    shard.write_bytes(DAMAGES[damage](shard.read_bytes()))
    again = FeatureCache(tmp_path)
    states = again.states(model, model.features_start, text_task, range(len(text_task)))
    assert "is damaged; deleted, its features will be computed again" in caplog.text and again.misses == len(set(
        text_task.inputs))
    assert all(np.allclose(a["features"], b["features"], atol=1e-6) for a, b in zip(first, states))


# -- the CLI ----------------------------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "headstart.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("args,message", [
    (["fit", "digits", "--out", "{file}"], "--out {file} is a file; give a folder"),
    (["compare", "digits", "--out", "{file}"], "--out {file} is a file; give a folder"),
    (["fit", "digits", "--set", "lr=abc", "--out", "{dir}"], "--set lr='abc': lr takes a number or none."),
    (["fit", "{csv}", "--encoding", "nope", "--out", "{dir}"], "Unknown encoding 'nope'"),
])
def test_cli_mistakes_end_in_one_sentence_before_any_work(tmp_path, args, message):
    file = tmp_path / "exists.txt"
    file.write_text("x")
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\na,x\nb,y\nc,x\nd,y\n")
    values = {"file": file, "dir": tmp_path / "out", "csv": csv}
    done = _cli(*[a.format(**values) for a in args])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message.format(**values) in done.stderr and done.stderr.count("\n") == 1


# -- concurrency ------------------------------------------------------------------------------------------------
def test_a_second_race_on_the_same_folder_is_refused(tmp_path):
    with race_lock(tmp_path):
        with pytest.raises(HeadstartError, match="is in use by another race .* use another --out"):
            run_race(toy_spec(budgets=(4,), seeds=1, strategies=("probe",)), tmp_path, task=toy_task(),
                     backbone=TEXT, progress=False)
    records = run_race(toy_spec(budgets=(4,), seeds=1, strategies=("probe",)), tmp_path, task=toy_task(),
                       backbone=TEXT, progress=False)  # free again once the first one ends
    assert len(records) == 1


def test_two_concurrent_compare_processes_on_one_folder(tmp_path):
    """A race in a child process holds the folder; a second one started meanwhile is refused at once."""
    child = subprocess.Popen([sys.executable, "-m", "tests.race_child", str(tmp_path), "0.5"], cwd=ROOT)
    try:
        import time

        deadline = time.time() + 60
        while time.time() < deadline and not (tmp_path / "results.sqlite").exists():
            time.sleep(0.05)
        with pytest.raises(HeadstartError, match="is in use by another race"):
            run_race(toy_spec(), tmp_path, task=toy_task(), backbone=TEXT, progress=False)
    finally:
        child.kill()
        child.wait()


# -- options aimed at one strategy, budgets checked up front ---------------------------------------------------
def test_a_race_can_set_an_option_for_one_strategy():
    from headstart.race import RaceSpec
    from headstart.race.grid import RunSpec

    options = parse_options(["lora.rank=4", "rank=2", "lr=1e-4", "full.lr=2e-5"], ["probe", "lora", "full"])
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe", "lora", "full"], budgets=[8], train_options=options)
    assert spec.options_for("lora") == {"rank": 4, "lr": 1e-4}  # addressed beats plain
    assert spec.options_for("full") == {"lr": 2e-5} and spec.options_for("probe") == {"lr": 1e-4}
    plain = RaceSpec("toy", "minilm-l6", strategies=["probe", "lora"], budgets=[8])
    assert spec.run_key(RunSpec("probe", 8, 0), "d") != plain.run_key(RunSpec("probe", 8, 0), "d")  # lr=1e-4
    only_lora = RaceSpec("toy", "minilm-l6", strategies=["probe", "lora"], budgets=[8],
                         train_options={"lora.rank": 4})
    assert only_lora.run_key(RunSpec("probe", 8, 0), "d") == plain.run_key(RunSpec("probe", 8, 0), "d")
    with pytest.raises(HeadstartError, match="The option 'rank' applies to none of probe, full"):
        RaceSpec("toy", "minilm-l6", strategies=["probe", "full"], budgets=[8], train_options={"rank": 4})


def test_budgets_are_checked_against_the_data_before_any_training(tmp_path):
    with pytest.raises(HeadstartError, match=r"A budget of 500 labels per class is more than toy can give: class "
                                             r"'pos' has \d+ examples to learn from .* The largest possible budget"):
        run_race(toy_spec(budgets=(4, 500), seeds=1, strategies=("probe",)), tmp_path, task=toy_task(),
                 backbone=TEXT, progress=False)
    assert not (tmp_path / "results.sqlite").exists()


def test_headstart_options_lists_every_option_with_its_default(capsys):
    from headstart.cli import main

    assert main(["options", "lora"]) == 0
    out = capsys.readouterr().out
    assert "rank             a positive integer" in out and "default 8" in out and "patience" in out
    # a declared option shows what it accepts
    assert re.search(r"guard +one of 'ewc', 'l2sp', 'lwf' or None +default None", out)
    assert re.search(r"l2sp +guard +weight +1 ", out)  # and the terms a fine-tune takes
    assert re.search(r"monitor +one of 'val_acc', 'val_loss', 'none' or None +default none", out)  # the strategy's
    assert "(lora trains at lr 0.0005 unless lr / head_lr say otherwise; it applies to text and image backbones)" in out
    assert main(["options", "scratch"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"monitor +one of 'val_acc', 'val_loss', 'none' or None +default val_acc", out)
    assert "scratch trains at a rate its backbone's architecture sets" in out
    assert main(["options", "ia3"]) == 0
    assert "(ia3 trains at lr 0.03 (on image backbones 0.003) unless lr / head_lr say otherwise" in \
        capsys.readouterr().out
    assert main(["options", "prompt"]) == 0
    assert "(prompt trains at lr 0.01 unless lr / head_lr say otherwise; it applies to text backbones)" in \
        capsys.readouterr().out
