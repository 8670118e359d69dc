"""Readers, splits and budgets, and every bad-input case with its message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from headstart.data import (
    Task,
    budget_indices,
    describe,
    draw,
    from_arrays,
    holdout,
    load_task,
    make_splits,
    parse_budget,
    stratified_subset,
)
from headstart.errors import HeadstartError


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def _images(root, per_class=4, classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (16, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t")])
def test_table_reads_texts_and_labels_with_guessed_columns(tmp_path, suffix, sep):
    path = _write(tmp_path / f"d{suffix}", f"id{sep}Review{sep}Sentiment\n1{sep}great{sep}pos\n2{sep}awful{sep}neg\n"
                                          f"3{sep}fine{sep}pos\n")
    task = load_task(path)
    assert task.inputs == ["great", "awful", "fine"] and task.classes == ("neg", "pos")
    assert task.labels.tolist() == [1, 0, 1] and task.modality == "text"


def test_jsonl_and_named_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"body": t, "y": y}) for t, y in [("a", "x"), ("b", "z")]) + "\n")
    task = load_task(path, text_column="body", label_column="y")
    assert task.inputs == ["a", "b"] and task.classes == ("x", "z")


@pytest.mark.parametrize("content,kwargs,message", [
    ("", {}, "is empty; it needs a header row"),
    ("text,label\n", {}, "has a header but no rows"),
    ("words,tag\na,b\n", {},
     "cannot tell which column holds the text (columns: words, tag). Name it with --text-column"),
    ("text,label\na,x\n", {"label_column": "gold"}, "has no label column 'gold'. Columns: text, label."),
    ("text,label\na,x\nb,\n", {}, "row 3: empty 'label'; give every row a label or remove it."),
    ("text,label\na,x\nb,x\n", {}, "only one class (x)"),
])
def test_bad_tables_say_what_to_do(tmp_path, content, kwargs, message):
    path = _write(tmp_path / "d.csv", content)
    with pytest.raises(HeadstartError) as err:
        load_task(path, **kwargs)
    assert message in str(err.value)


def test_undecodable_text_names_line_and_encoding(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\nok,a\ncaf\u00e9,b\n", encoding="latin-1")
    with pytest.raises(HeadstartError, match=r"not valid utf-8 \(line 3.*--encoding latin-1"):
        load_task(path)
    assert load_task(path, encoding="latin-1").inputs[1] == "caf\u00e9"


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(HeadstartError, match="does not exist"):
        load_task(tmp_path / "nope.csv")
    with pytest.raises(HeadstartError, match="neither a file, a folder nor a named example. Named examples: rotten"):
        load_task("rotten-potatoes")


def test_image_folder_skips_and_counts_corrupt_files(tmp_path):
    root = _images(tmp_path / "imgs")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "dog" / "notes.txt").write_text("hello")
    task = load_task(root)
    assert len(task) == 8 and task.classes == ("cat", "dog") and task.modality == "image"
    assert task.notes == ("skipped 2 unreadable or non-image files (cat/broken.jpg, dog/notes.txt)",)
    with pytest.raises(HeadstartError, match=r"broken.jpg is not a readable image .* drop --strict"):
        load_task(root, strict=True)


def test_image_folder_without_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(HeadstartError, match="has no sub-folders; put each class's images in a sub-folder"):
        load_task(tmp_path / "flat")


def test_npz_and_arrays(tmp_path):
    x = np.zeros((6, 8, 8), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]))
    task = load_task(tmp_path / "d.npz")
    assert task.modality == "image" and task.classes == ("0", "1", "2") and len(task.subset([0, 1])) == 2
    with pytest.raises(HeadstartError, match=r"Labels \['z'\] are not among the classes"):
        from_arrays(["a", "b"], ["x", "z"], classes=["x", "y"])


def test_npz_problems_get_one_sentence(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not an archive")
    np.savez(tmp_path / "full.npz", x=np.array(["good", "bad"]), y=np.array([0, 1]))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "full.npz").read_bytes()[:150])
    for name in ("garbage", "cut"):
        with pytest.raises(HeadstartError, match=rf"{name}.npz is damaged or not an .npz file; re-save it"):
            load_task(tmp_path / f"{name}.npz")
    np.savez(tmp_path / "objects.npz", x=np.array(["a", 1], dtype=object), y=np.array([0, 1]))
    with pytest.raises(HeadstartError, match=r"stores Python objects; save texts as a string array"):
        load_task(tmp_path / "objects.npz")
    np.savez(tmp_path / "names.npz", **{"a\nb": np.arange(3)})
    with pytest.raises(HeadstartError, match=r"needs arrays named x and y \(found: 'a\\nb'\)\.$") as err:
        load_task(tmp_path / "names.npz")
    assert "\n" not in str(err.value)


def _balanced(n_per_class=20, classes=3):
    texts = [f"example {i}" for i in range(n_per_class * classes)]
    return Task(texts, np.repeat(np.arange(classes), n_per_class), tuple("abc"[:classes]), "text")


def test_splits_are_stratified_disjoint_and_reproducible():
    task = _balanced()
    s = make_splits(task, seed=3)
    parts = [set(s.pool), set(s.selection), set(s.test)]
    assert sum(map(len, parts)) == len(task) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for idx in (s.pool, s.selection, s.test):  # each class in the same proportion
        assert len(set(np.bincount(task.labels[idx]).tolist())) == 1
    assert (len(s.selection), len(s.test)) == (12, 12)  # a fifth each
    again = make_splits(task, seed=3)
    assert np.array_equal(s.test, again.test) and not np.array_equal(s.test, make_splits(task, seed=4).test)
    assert np.array_equal(s.selection, again.selection)


def test_small_heldout_parts_are_warned_about():
    s = make_splits(_balanced(), seed=0)
    assert [w.split(" part")[0] for w in s.warnings] == ["the selection", "the test"]
    assert "fewer than 100" in s.warnings[0]
    assert make_splits(_balanced(300), seed=0).warnings == ()


def test_duplicates_stay_in_one_split():
    texts = [f"t{i}" for i in range(30)] + ["dup"] * 6
    task = Task(texts, np.array([0, 1] * 15 + [0] * 6), ("a", "b"), "text")
    s = make_splits(task)
    where = {name for name in ("pool", "selection", "test") for i in getattr(s, name) if texts[i] == "dup"}
    assert len(where) == 1
    assert describe(task)["splits"]["duplicates_across"] == {}


def test_excluded_examples_are_in_no_part_and_test_fraction_zero_makes_no_test_part():
    task = _balanced(10)
    s = make_splits(task, test_fraction=0.0, exclude=np.array([0, 1, 2]))
    assert len(s.test) == 0 and not {0, 1, 2} & (set(s.pool) | set(s.selection))
    assert len(s.pool) + len(s.selection) == len(task) - 3


def test_budgets_are_nested_and_balanced():
    task = _balanced(40)
    pool = make_splits(task).pool
    small, big = budget_indices(task, pool, 4, seed=1), budget_indices(task, pool, 16, seed=1)
    assert set(small) <= set(big) and set(big) <= set(pool)
    assert np.bincount(task.labels[small]).tolist() == [4, 4, 4]
    assert not np.array_equal(small, budget_indices(task, pool, 4, seed=2))
    assert np.array_equal(budget_indices(task, pool, None), np.sort(pool))


@pytest.mark.parametrize("budget,train,val", [(1, 1, 0), (2, 2, 0), (3, 3, 0), (4, 3, 1), (8, 6, 2), (16, 12, 4),
                                              (9, 6, 3)])
def test_a_budget_counts_validation_labels(budget, train, val):
    """n per class is every label a run sees: training and validation both come out of it."""
    task = _balanced(40)
    s = make_splits(task)
    tr, va = draw(task, s, budget, seed=1)
    assert np.bincount(task.labels[tr]).tolist() == [train] * 3
    assert np.bincount(task.labels[va], minlength=3).tolist() == [val] * 3
    assert set(np.concatenate([tr, va])) == set(budget_indices(task, s.pool, budget, seed=1))
    tr_big, va_big = draw(task, s, 24, seed=1)
    assert set(tr) <= set(tr_big) and set(np.concatenate([tr, va])) <= set(np.concatenate([tr_big, va_big]))
    tr_all, va_all = draw(task, s, None, seed=1)
    assert len(tr_all) + len(va_all) == len(s.pool) and len(va_all) == 3 * 6  # ceil(24 / 4) per class


def test_duplicates_never_straddle_training_and_validation():
    texts = [f"t{i}" for i in range(20)] + ["same"] * 8
    task = Task(texts, np.array([0, 1] * 10 + [0] * 8), ("a", "b"), "text")
    for seed in range(5):
        tr, va = holdout(task, seed=seed)
        sides = {("train" if i in set(tr) else "val") for i in range(20, 28)}
        assert len(sides) == 1


def test_stratified_subset_keeps_natural_proportions_and_size():
    labels = np.array([0] * 800 + [1] * 150 + [2] * 40 + [3] * 10)
    task = Task([f"x{i}" for i in range(1000)], labels, tuple("abcd"), "text")
    sub = stratified_subset(task, np.arange(1000), 200, seed=0)
    assert len(sub) == 200
    assert np.bincount(task.labels[sub]).tolist() == [160, 30, 8, 2]
    assert np.array_equal(sub, stratified_subset(task, np.arange(1000), 200, seed=0))
    tiny = stratified_subset(task, np.arange(1000), 10, seed=0)
    assert len(tiny) == 10 and np.all(np.bincount(task.labels[tiny], minlength=4) >= 1)


def test_too_few_examples_for_split_or_budget():
    task = Task(["a", "b", "c", "d", "e"], np.array([0, 0, 0, 1, 1]), ("x", "y"), "text")
    with pytest.raises(HeadstartError, match="class 'y' has 2 distinct examples; a pool/selection/test split needs"):
        make_splits(task)
    big = _balanced(10)
    with pytest.raises(HeadstartError, match=r"class 'a' has only \d+ examples to learn from, fewer than the budget"):
        budget_indices(big, make_splits(big).pool, 50)


@pytest.mark.parametrize("value,expected", [("all", None), (None, None), ("8", 8), (32, 32), ("0", 0), ("1", 1),
                                                  (3, 3)])
def test_parse_budget(value, expected):
    assert parse_budget(value) == expected


@pytest.mark.parametrize("value", ["-3", "many", "2.5"])
def test_parse_budget_rejects_nonsense(value):
    with pytest.raises(HeadstartError, match="budget"):
        parse_budget(value)


def test_unlabelled_target_examples_from_every_kind_of_source(tmp_path):
    from headstart.data import load_unlabelled

    table = tmp_path / "target.csv"
    table.write_text("text,label\nfirst one,pos\n ,neg\nsecond one,\n", encoding="utf-8")  # labels never read
    t = load_unlabelled(table, ("neg", "pos"), "text")
    assert list(t.inputs) == ["first one", "second one"] and t.classes == ("neg", "pos") and set(t.labels) == {0}
    folder = tmp_path / "imgs" / "any"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    assert len(load_unlabelled(tmp_path / "imgs", ("a", "b"), "image")) == 3
    np.savez(tmp_path / "x.npz", x=np.array(["a text", "another"]), y=np.array([0, 1]))
    assert list(load_unlabelled(tmp_path / "x.npz", ("a", "b"), "text").inputs) == ["a text", "another"]
    with pytest.raises(HeadstartError, match=r"imgs is a folder, but the labelled data are texts; give a CSV"):
        load_unlabelled(tmp_path / "imgs", ("a", "b"), "text")
    with pytest.raises(HeadstartError, match=r"^--target .*nope.csv: the file does not exist\.$"):
        load_unlabelled(tmp_path / "nope.csv", ("a", "b"), "text")
    with pytest.raises(HeadstartError, match=r"^--target .*notes.md: give a CSV/TSV/JSONL file"):
        load_unlabelled(tmp_path / "notes.md", ("a", "b"), "text")
