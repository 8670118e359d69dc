"""Every case of the second bad-input sweep, one test each: damaged or full stores, numbers out of range,
options that do not apply to the backbone, empty paths, labels in the API, malformed tables, the lab.

Each asserts the sentence the user sees and that no work started (``no_work`` makes reaching the
training or the data an error), so a check that moves later, or disappears, fails here.
"""

from __future__ import annotations

import socket
import sqlite3

import numpy as np
import pytest

from headstart import Adapter
from headstart.cli import main
from headstart.data import from_arrays, load_task
from headstart.errors import HeadstartError
from headstart.race import ResultStore, run_race
from headstart.train import Callback

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task


def refused(argv, capsys) -> str:
    """Run the CLI; it must exit 2 with one line on stderr starting 'error:' and nothing on stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: "):].strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a damaged, full, read-only or locked results store -------------------------------------------------------
def damaged_folder(tmp_path):
    folder = tmp_path / "race"
    folder.mkdir()
    (folder / "results.sqlite").write_bytes(b"this is not an sqlite database" * 100)
    return folder


@pytest.mark.parametrize("command", [["report", "{f}"], ["compare", "rotten-tomatoes", "--out", "{f}"],
                                     ["lab", "{f}", "--port", "{port}"]])
def test_a_damaged_store_is_one_sentence_in_every_command(tmp_path, capsys, request, command):
    if command[0] != "lab":  # the lab's session is what opens the store: it runs that far
        request.getfixturevalue("no_work")
    folder = damaged_folder(tmp_path)
    message = refused([a.format(f=folder, port=free_port()) for a in command], capsys)
    assert f"{folder / 'results.sqlite'} (a race's results) is damaged and cannot be read" in message
    assert "move it away or delete it" in message
    assert (folder / "results.sqlite").read_bytes().startswith(b"this is not"), "the user's file was changed"


def _store_with_runs(path, n=200):
    with ResultStore(path) as store:
        for i in range(n):
            store.add(f"k{i:04d}", "probe", 8, 0, {"acc": 0.5, "pad": "x" * 500})
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()


def test_a_malformed_store_is_a_sentence_not_a_traceback(tmp_path):
    path = tmp_path / "results.sqlite"
    _store_with_runs(path)
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[page * 3: page * 8] = b"\xff" * (page * 5)  # btree pages in the middle of the file
    path.write_bytes(bytes(raw))
    with pytest.raises(HeadstartError, match=r"is damaged and cannot be read \(.*malformed"):
        with ResultStore(path) as store:
            store.records()


def test_a_damaged_record_names_the_run(tmp_path):
    path = tmp_path / "results.sqlite"
    _store_with_runs(path, 2)
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET record = '{\"acc\": 0.5' WHERE key = 'k0001'")
    db.commit()
    db.close()
    with pytest.raises(HeadstartError, match=r"the run k0001 is damaged \(not valid JSON\)"):
        ResultStore(path).records()


def _connect_with(monkeypatch, after_open):
    import headstart.storage as storage

    real = sqlite3.connect

    def connect(path, *args, **kwargs):
        db = real(path, *args, **kwargs)
        after_open(db, path)
        return db

    monkeypatch.setattr(storage.sqlite3, "connect", connect)


def test_a_full_disk_is_a_sentence(tmp_path, monkeypatch):
    path = tmp_path / "results.sqlite"
    _store_with_runs(path, 2)

    def cap(db, _):  # SQLite's own page cap: the database can grow no more, as on a full disk
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    _connect_with(monkeypatch, cap)
    store = ResultStore(path)
    with pytest.raises(HeadstartError, match=r"^The disk holding .*results.sqlite \(a race's results\) is full; "
                                             r"free space"):
        store.add("big", "probe", 8, 0, {"pad": "x" * 200_000})
    assert store.done_keys() == {"k0000", "k0001"}, "the failed write must leave nothing half-written"


def test_a_read_only_store_is_a_sentence(tmp_path, monkeypatch):
    path = tmp_path / "results.sqlite"
    _store_with_runs(path, 1)
    _connect_with(monkeypatch, lambda db, _: db.execute("PRAGMA query_only = ON"))
    store = ResultStore(path)  # reading works
    assert store.done_keys() == {"k0000"}
    with pytest.raises(HeadstartError, match="cannot be written: the file, its folder or the disk is read-only"):
        store.add("k", "probe", 8, 0, {})


def test_a_store_locked_by_another_process_is_a_sentence(tmp_path, monkeypatch):
    import headstart.storage as storage

    path = tmp_path / "results.sqlite"
    _store_with_runs(path, 1)
    monkeypatch.setattr(storage, "TIMEOUT", 0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        store = ResultStore(path)
        with pytest.raises(HeadstartError, match=r"stayed locked by another process for 0.2 s"):
            store.add("k", "probe", 8, 0, {})
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_folder_named_like_the_store_is_a_sentence(tmp_path):
    (tmp_path / "results.sqlite").mkdir()
    with pytest.raises(HeadstartError, match=r"results.sqlite \(a race's results\) is a folder, not a file"):
        ResultStore(tmp_path / "results.sqlite")


def test_the_lab_job_queue_uses_the_same_opener(tmp_path):
    from headstart.lab.jobs import SCHEMA
    from headstart.storage import Database

    (tmp_path / "lab.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(HeadstartError, match=r"lab.sqlite \(the lab's job queue\) is damaged"):
        Database(tmp_path / "lab.sqlite", SCHEMA, "the lab's job queue")


# -- numbers out of range, options that do not apply -----------------------------------------------------------
@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--threads", "0", "--threads must be a positive integer. Got 0 instead (e.g. --threads 2)."),
    ("--threads", "-2", "--threads must be a positive integer. Got -2 instead"),
    ("--split-seed", "-5", "--split-seed must be a non-negative integer. Got -5 instead (e.g. --split-seed 0)."),
    ("--max-length", "-5", "--max-length must be an integer of at least 2 or None. Got -5 instead"),
    ("--max-length", "0", "--max-length must be an integer of at least 2 or None. Got 0 instead"),
    ("--image-size", "64", "The option --image-size does not apply to minilm-l6, a text backbone; it takes "
                           "--max-length."),
    ("--test-limit", "0", "--test-limit must be a positive integer. Got 0 instead"),
    ("--lr", "-1", "The 'lr' parameter of TrainConfig must be positive or None. Got -1.0 instead (e.g. lr=0.0001)."),
    ("--lr", "nan", "The 'lr' parameter of TrainConfig must be positive or None. Got nan instead"),
])
def test_compare_refuses_numbers_out_of_range_before_any_work(capsys, no_work, tmp_path, flag, value, words):
    message = refused(["compare", "rotten-tomatoes", "--backbone", "minilm-l6", "--out", str(tmp_path / "o"),
                       flag, value], capsys)
    assert message == words or message.startswith(words), message


@pytest.mark.parametrize("command", [["fit", "rotten-tomatoes", "--out", "{out}"], ["advise", "rotten-tomatoes"],
                                     ["compare", "rotten-tomatoes", "--out", "{out}"]])
def test_an_option_the_backbone_does_not_take_is_refused_in_every_command(capsys, no_work, tmp_path, command):
    argv = [a.format(out=tmp_path / "o") for a in command] + ["--backbone", "minilm-l6", "--image-size", "64"]
    assert refused(argv, capsys) == ("The option --image-size does not apply to minilm-l6, a text backbone; it "
                                     "takes --max-length.")


def test_a_vision_option_out_of_range_and_a_text_option_on_a_vision_backbone(tmp_path):
    from headstart.backbones import create_backbone

    with pytest.raises(HeadstartError, match=r"^The 'image_size' parameter of backbone mobilenetv2 must be an integer "
                                             r"in \[32, 1024\] or None. Got 8 instead"):
        create_backbone("mobilenetv2", pretrained=False, image_size=8)
    with pytest.raises(HeadstartError, match=r"^The option 'max_length' does not apply to mobilenetv2, an image "
                                             r"backbone; it takes image_size, weights."):
        create_backbone("mobilenetv2", pretrained=False, max_length=64)


def test_max_length_beyond_the_encoders_positions_is_refused_and_the_default_fits_small_encoders(tmp_path):
    from transformers import BertConfig, BertModel

    from headstart.backbones import create_backbone
    from headstart.backbones.text import HFTextBackbone

    tiny = tiny_backbone("minilm-l6")
    model = BertModel(BertConfig(vocab_size=len(tiny.tokenizer), hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16, max_position_embeddings=40))
    assert HFTextBackbone(model, tiny.tokenizer, name="t", pretrained=True, source="test").max_length == 40
    with pytest.raises(HeadstartError, match=r"max_length=100 \(--max-length\) is more than t can read: its position "
                                             r"table holds 40 tokens"):
        HFTextBackbone(model, tiny.tokenizer, name="t", pretrained=True, source="test", max_length=100)
    with pytest.raises(HeadstartError, match="does not apply to minilm-l6"):
        create_backbone("minilm-l6", image_size=64)


@pytest.mark.parametrize(("argv", "words"), [
    (["advise", "rotten-tomatoes", "--subset", "3"], "--subset must be an integer of at least 10. Got 3 instead"),
    (["lab", "rotten-tomatoes", "--port", "0"], "--port must be an integer in [1, 65535]. Got 0 instead"),
    (["lab", "rotten-tomatoes", "--port", "70000"], "--port must be an integer in [1, 65535]. Got 70000 instead"),
    (["compare", "rotten-tomatoes", "--out", "{out}", "--seeds", "0"], "--seeds must be a positive integer."),
    (["fit", "rotten-tomatoes", "--out", "{out}", "--split-seed", "-1"], "--split-seed must be a non-negative"),
    (["fit", "rotten-tomatoes", "--out", "{out}", "--set", "warmup=1"],
     "The 'warmup' parameter of TrainConfig must be in [0, 1). Got 1.0 instead (e.g. warmup=0.1)."),
    (["export", "{out}", "--out", "{out}2", "--atol", "0"],
     "--atol must be positive. Got 0.0 instead (e.g. --atol 0.0001)."),
])
def test_every_commands_own_numbers_are_checked_first(capsys, no_work, tmp_path, argv, words):
    message = refused([a.format(out=tmp_path / "o") for a in argv], capsys)
    assert message.startswith(words), message


def test_race_spec_and_executors_check_their_numbers_in_the_api():
    from headstart.race import RaceSpec
    from headstart.race.executors import LocalExecutor, RayExecutor

    with pytest.raises(HeadstartError, match=r"^The 'split_seed' parameter of a race must be a non-negative integer"):
        RaceSpec("toy", "minilm-l6", split_seed=-5)
    with pytest.raises(HeadstartError, match=r"^The 'threads' parameter of LocalExecutor must be a positive integer"):
        LocalExecutor(threads=0)
    with pytest.raises(HeadstartError, match=r"^The 'gpus_per_run' parameter of RayExecutor must be non-negative"):
        RayExecutor(gpus_per_run=-1)
    with pytest.raises(HeadstartError, match=r"A label budget is labelled examples per class .* Got True"):
        RaceSpec("toy", "minilm-l6", budgets=[True])


# -- paths ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "words"), [
    (["predict", "{model}", ""], "an input is empty (''); give a text, a file or a folder"),
    (["predict", "", "some text"], "MODEL is empty (''); give a path"),
    (["compare", "", "--out", "{out}"], "DATA is empty (''); give a path"),
    (["compare", "rotten-tomatoes", "--out", ""], "--out is empty (''); give a path"),
    (["compare", "rotten-tomatoes", "--out", "{out}", "--test", " "], "--test is empty (' '); give a path"),
    (["fit", "rotten-tomatoes", "--out", "{out}", "--target", ""], "--target is empty (''); give a path"),
    (["report", ""], "FOLDER is empty (''); give a path"),
    (["compare", "rotten-tomatoes", "--out", "{out}", "--strategies", ""], "--strategies is empty (''); name at least"),
    (["compare", "rotten-tomatoes", "--out", "{out}", "--budgets", " , "], "--budgets is empty (' , '); name at least"),
    (["data", "describe", ""], "DATA is empty (''); give a path"),
])
def test_an_empty_path_is_never_the_current_folder(capsys, no_work, tmp_path, monkeypatch, argv, words):
    (tmp_path / "pictures" / "a").mkdir(parents=True)  # what '' would have read: the current folder's images
    np.save(tmp_path / "pictures" / "a" / "x.npy", np.zeros(1))
    monkeypatch.chdir(tmp_path)
    message = refused([a.format(model=tmp_path, out=tmp_path / "o") for a in argv], capsys)
    assert message.startswith(words) and ("unset shell variable" in message or "default" in message), message


def test_empty_paths_in_the_api():
    with pytest.raises(HeadstartError, match=r"^The data path is empty"):
        load_task("")
    with pytest.raises(HeadstartError, match=r"^The model folder is empty"):
        Adapter.load("")


def test_report_on_a_file_does_not_suggest_writing_a_race_into_it(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("text,label\n", encoding="utf-8")
    assert refused(["report", str(path)], capsys) == (f"{path} is a file; give the folder that `headstart compare "
                                                      "--out` wrote.")
    assert refused(["report", str(tmp_path / "missing")], capsys).endswith("does not exist; give the folder that "
                                                                          "`headstart compare --out` wrote.")


@pytest.mark.parametrize("variable", ["HEADSTART_CACHE", "XDG_CACHE_HOME"])
def test_a_cache_variable_pointing_at_a_file_names_the_variable(tmp_path, monkeypatch, variable):
    from headstart.fetch import cache_dir

    path = tmp_path / "notes.txt"
    path.write_text("x", encoding="utf-8")
    monkeypatch.delenv("HEADSTART_CACHE", raising=False)
    monkeypatch.setenv(variable, str(path))
    with pytest.raises(HeadstartError, match=rf"^{variable}=.*notes.txt points at a file .*; point it at a folder"):
        cache_dir()
    monkeypatch.setenv(variable, str(path / "under"))
    with pytest.raises(HeadstartError, match=r"points under a file"):
        cache_dir()
    monkeypatch.setenv(variable, "  ")  # empty means unset
    assert cache_dir() == cache_dir.__globals__["Path"].home() / ".cache" / "headstart"


def test_a_folder_given_as_the_test_file_of_text_data(tmp_path):
    from headstart.race import prepare_race

    (tmp_path / "images" / "a").mkdir(parents=True)
    spec = toy_spec(budgets=(4,), seeds=1, strategies=("probe",))
    spec.test = str(tmp_path / "images")
    with pytest.raises(HeadstartError, match=r"^--test .*images is a folder, but the data are texts; give a "
                                             r"CSV/TSV/JSONL"):
        prepare_race(spec, toy_task())


def test_a_folder_given_as_unlabelled_target_texts(tmp_path):
    from headstart.data import load_unlabelled

    with pytest.raises(HeadstartError, match=r"^--target .* is a folder, but the labelled data are texts"):
        load_unlabelled(str(tmp_path), ("a", "b"), "text")


# -- labels and inputs in the Python API --------------------------------------------------------------------------
@pytest.mark.parametrize(("labels", "words"), [
    (["x", None, "y", "x"], "1 of 4 labels are missing (None, NaN or empty), at positions 1;"),
    ([1.0, float("nan"), 0.0, 1.0], "1 of 4 labels are missing (None, NaN or empty), at positions 1;"),
    (["x", float("nan"), "y", None], "2 of 4 labels are missing (None, NaN or empty), at positions 1, 3;"),
    (["x", " ", "y", "x"], "1 of 4 labels are missing"),
    ([1, "1", "y", "x"], "Labels mix number and string values (e.g. 1 and '1')"),
    ([True, 1, 0, False], "Labels mix boolean and number values"),
    ([0.1, 0.5, 0.7, 0.2], "Labels are continuous (4 distinct fractional numbers such as 0.1)"),
    ([[0], [1], [0], [1]], "Labels must be one per example (a 1-D sequence); label 0 is a list."),
])
def test_labels_in_the_api_are_checked_like_labels_in_files(labels, words):
    with pytest.raises(HeadstartError) as err:
        from_arrays(["a", "b", "c", "d"], labels)
    assert str(err.value).startswith(words), str(err.value)


def test_whole_number_floats_and_booleans_are_classes():
    assert from_arrays(["a", "b", "c", "d"], [1.0, 0.0, 1.0, 0.0]).classes == ("0", "1")
    assert from_arrays(["a", "b", "c", "d"], [True, False, True, False]).classes == ("False", "True")


def test_a_none_label_reaches_fit_as_a_sentence_not_a_type_error():
    with pytest.raises(HeadstartError, match="labels are missing"):
        Adapter(tiny_backbone("minilm-l6")).fit(["a b", "c d", "e f", "g h"], ["x", None, "y", "x"])


def test_a_word_for_a_number_is_refused_with_the_range_and_an_example(monkeypatch):
    import headstart.adapter as adapter

    monkeypatch.setattr(adapter, "fit_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    with pytest.raises(HeadstartError, match=r"^The 'lr' parameter of TrainConfig must be positive or None. Got "
                                             r"'fast' instead \(e.g. lr=0.0001\)."):
        Adapter(tiny_backbone("minilm-l6"), lr="fast").fit(["a b", "c d", "e f", "g h"] * 2, ["x", "y"] * 4)


def test_too_few_distinct_examples_for_a_validation_set_is_named():
    with pytest.raises(HeadstartError, match=r"^X: too few distinct examples to hold out a validation set"):
        Adapter(tiny_backbone("minilm-l6"), "full", monitor="val_acc").fit(["a b", "c d"] * 4, ["x", "y"] * 4)


@pytest.mark.parametrize(("inputs", "words"), [
    ([["a"], ["b"]], "X[0] is a list (['a']); every input must be a text (a string), an image array or an image "
                     "file's path (2 do not fit, at 0, 1)."),
    (["a", None], "X[1] is a NoneType (None);"),
    (["a", np.zeros((8, 8))], "X mixes texts and images (X[0] is a text, X[1] an image); give one kind."),
])
def test_inputs_that_are_neither_texts_nor_images(inputs, words):
    with pytest.raises(HeadstartError) as err:
        from_arrays(inputs, ["x", "y"], name="X")
    assert str(err.value).startswith(words), str(err.value)


def test_predict_refuses_inputs_that_are_neither_texts_nor_images(text_task):
    clf = Adapter(tiny_backbone("minilm-l6"), "probe", feature_cache=False).fit(text_task)
    with pytest.raises(HeadstartError, match=r"is a text model but got ndarray input"):
        clf.predict([np.zeros((8, 8), dtype=np.uint8)])
    with pytest.raises(HeadstartError, match=r"^X\[0\] is a list"):
        clf.predict([["a list"]])


# -- tables ------------------------------------------------------------------------------------------------------
def _table(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_semicolon_delimited_csv_is_read(tmp_path, caplog):
    rows = "".join(f"texte {i}, avec virgule;{'ab'[i % 2]}\n" for i in range(12))
    task = load_task(_table(tmp_path, "text;label\n" + rows))
    assert task.classes == ("a", "b") and task.inputs[0] == "texte 0, avec virgule"
    assert "read with semicolons between fields" in caplog.text


def test_ragged_rows_are_named_by_line(tmp_path):
    path = _table(tmp_path, "text,label\nhello there,a\nbye now,b,extra\nfoo\nok then,b\n")
    with pytest.raises(HeadstartError, match=r"2 rows do not have the header's 2 fields, at lines 3 \(3 fields\), "
                                             r"4 \(1 field\); a text with an unquoted separator needs quotes"):
        load_task(path)


def test_unquoted_commas_are_named_not_turned_into_classes(tmp_path):
    path = _table(tmp_path, "text,label\nfine,a\ngood, really,b\nbad,b\nnice,a\n")
    with pytest.raises(HeadstartError, match=r"1 row do not have the header's 2 fields, at line 3 \(3 fields\)"):
        load_task(path)


def test_an_unclosed_quote_is_named_by_the_line_it_opens(tmp_path):
    path = _table(tmp_path, 'text,label\nfine,a\n"hello there,a\nbye now,b\nok,a\n')
    with pytest.raises(HeadstartError, match=r"data.csv, line 3: a quote opens there and is never closed"):
        load_task(path)


def test_quoted_multi_line_texts_and_doubled_quotes_still_read(tmp_path):
    task = load_task(_table(tmp_path, 'text,label\n"multi\nline, text",a\nbye now,b\n"x ""q"" y",a\n'))
    assert task.inputs == ["multi\nline, text", "bye now", 'x "q" y']


def test_a_one_megabyte_field_is_a_valid_text(tmp_path):
    big = "word " * 200_000
    task = load_task(_table(tmp_path, f'text,label\n"{big}",a\nshort,b\nother,a\n'))
    assert len(task.inputs[0]) == len(big)


def test_continuous_labels_in_a_table_are_not_forty_classes(tmp_path):
    rows = "".join(f"text {i},{(i * 0.37) % 1:.3f}\n" for i in range(40))
    with pytest.raises(HeadstartError, match=r"the 'label' column holds 40 distinct numbers, 39 of them fractional "
                                             r"\(such as 0\.03\); headstart classifies"):
        load_task(_table(tmp_path, "text,label\n" + rows))


def test_a_json_list_as_a_label_is_refused(tmp_path):
    path = _table(tmp_path, '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": "y"}\n', "data.jsonl")
    with pytest.raises(HeadstartError, match=r"row 2: 'label' is a JSON list, not one class label"):
        load_task(path)


# -- the lab ---------------------------------------------------------------------------------------------------
class _RefuseAtTheEnd(Callback):
    def on_run_end(self, record):
        raise KeyboardInterrupt("cancelled")


def test_a_run_refused_at_its_end_is_never_stored(tmp_path):
    spec = toy_spec(budgets=(4,), seeds=1, strategies=("probe",))
    with pytest.raises(KeyboardInterrupt):
        run_race(spec, tmp_path, task=toy_task(), backbone=lambda p: tiny_backbone("minilm-l6", p), progress=False,
                 run_callbacks=lambda run: [_RefuseAtTheEnd()])
    with ResultStore(tmp_path / "results.sqlite") as store:
        assert store.done_keys() == set()


def test_the_labs_live_callback_stops_a_cancelled_probe_before_it_is_stored():
    from headstart.lab.jobs import Job, JobCancelled, LiveCallback

    class Queue:
        hub = type("Hub", (), {"publish": staticmethod(lambda e: e)})()
        cancelled = False

        def cancel_requested(self, job_id):
            return self.cancelled

    queue = Queue()
    callback = LiveCallback(queue, Job(1, "probe", 8, None, "k", "running"))
    callback.on_run_end({"acc": 0.9})  # not cancelled: the run goes on to the store
    queue.cancelled = True
    with pytest.raises(JobCancelled):
        callback.on_run_end({"acc": 0.9})


def test_a_taken_port_is_one_sentence_and_no_url(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = refused(["lab", str(damaged_folder(tmp_path)), "--port", str(port)], capsys)
    assert message.startswith(f"Port {port} on 127.0.0.1 is already in use (another lab, or another server); pass "
                              f"--port {port + 1}")
