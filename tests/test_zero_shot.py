"""``zero-shot``: no training, each class its name's prompt embedding; for images through a CLIP checkpoint's text
tower, where its predictions must be CLIP's own (the argmax of ``logits_per_image`` for the same prompts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image

from headstart import Adapter
from headstart.data import Task
from headstart.errors import HeadstartError

WORDS = ["a", "photo", "of", "the", "red", "blue", "green", "square", "circle", "thing", "."]


def _clip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<unk>", "<bos>", "<eos>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                       special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                      eos_token="<eos>")


def _clip_folder(folder):
    """A tiny CLIP checkpoint with its tokenizer and image processor, as save_pretrained leaves them."""
    tokenizer = _clip_tokenizer()
    config = tf.CLIPConfig(
        text_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
                     "vocab_size": len(tokenizer), "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
                     "max_position_embeddings": 16},
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
                       "image_size": 32, "patch_size": 8}, projection_dim=16)
    torch.manual_seed(0)
    model = tf.CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    return model, tokenizer, processor


def _images(n=8):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(36, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_zero_shot_predicts_what_clip_itself_predicts(tmp_path):
    model, tokenizer, processor = _clip_folder(tmp_path)
    images, labels = _images(), np.array([0, 1] * 4)
    task = Task(images, labels, ("red square", "blue circle"), "image", "toy")
    clf = Adapter(f"hf:{tmp_path}", "zero-shot", feature_cache=None, templates=("a photo of a {}.",)).fit(task)
    prompts = tokenizer(["a photo of a red square.", "a photo of a blue circle."], padding=True, return_tensors="pt")
    pixels = processor([Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        theirs = model(pixel_values=pixels, **prompts).logits_per_image.argmax(1).numpy()
    ours = clf.predict_proba(images).argmax(1)
    assert (ours == theirs).all()
    assert any("no training: 2 classes × 1 prompts" in n for n in clf.result_.notes)
    again = Adapter.load(clf.save(tmp_path / "saved"))
    assert again.predict_proba(images) == pytest.approx(clf.predict_proba(images), abs=1e-6)


def test_text_zero_shot_ranks_classes_by_cosine_to_their_prompts(text_task):
    from .conftest import tiny_backbone

    backbone = tiny_backbone("minilm-l6")
    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None).fit(text_task)
    feats = torch.nn.functional.normalize(backbone.embed(list(text_task.inputs)), dim=-1)
    prompts = torch.nn.functional.normalize(backbone.embed([f"{c}." for c in ("pos", "neg")]), dim=-1)
    prompts2 = torch.nn.functional.normalize(backbone.embed([f"This text is about {c}." for c in ("pos", "neg")]),
                                             dim=-1)
    rows = torch.nn.functional.normalize(prompts + prompts2, dim=-1)
    expected = (feats @ rows.T).argmax(1).numpy()
    assert (clf.predict_proba(list(text_task.inputs)).argmax(1) == expected).all()


def test_classes_that_are_codes_are_refused_rather_than_compared(text_task):
    from .conftest import tiny_backbone

    coded = Task(text_task.inputs, text_task.labels, ("0", "1"), "text", "toy")
    with pytest.raises(HeadstartError, match=r"but 0, 1 are codes; describe each class in words"):
        Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None).fit(coded)
    half = {"0": ("a good review",)}  # described codes are fine; a code left undescribed is not
    with pytest.raises(HeadstartError, match=r"but 1 is a code"):
        Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None, descriptions=half).fit(coded)


def test_described_classes_are_embedded_in_the_users_words(text_task):
    from .conftest import tiny_backbone

    backbone = tiny_backbone("minilm-l6")
    coded = Task(text_task.inputs, text_task.labels, ("0", "1"), "text", "toy")
    words = {"0": ("a good movie", "great fun"), "1": ("a bad movie",)}
    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None, descriptions=words)
    clf.fit(coded)
    unit = torch.nn.functional.normalize
    rows = torch.stack([unit(unit(backbone.embed(list(words[c])), dim=-1).mean(0), dim=0) for c in ("0", "1")])
    expected = (unit(backbone.embed(list(coded.inputs)), dim=-1) @ rows.T).argmax(1).numpy()
    assert (clf.predict_proba(list(coded.inputs)).argmax(1) == expected).all()
    with pytest.raises(HeadstartError, match="name '2', which is not one of the classes"):
        Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", descriptions={"2": ("x",)}).fit(coded)


def test_a_class_descriptions_file_is_read_line_by_line(tmp_path):
    from headstart.data.descriptions import read_class_descriptions

    good = tmp_path / "d.txt"
    good.write_text("# what the labels mean\nfresh: a positive review | a film the critic loved\n\nrotten: a {} film\n")
    assert read_class_descriptions(good) == {"fresh": ("a positive review", "a film the critic loved"),
                                             "rotten": ("a {} film",)}
    for text, says in [("fresh a review\n", "line 1: 'fresh a review' is not 'class: description"),
                       ("a: x\na: y\n", "line 2: class 'a' is described twice"), ("# only\n", "describes no class")]:
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(HeadstartError, match=says):
            read_class_descriptions(bad)
    with pytest.raises(HeadstartError, match="does not exist"):
        read_class_descriptions(tmp_path / "missing.txt")


def test_an_image_model_without_a_text_tower_is_refused():
    from .conftest import tiny_backbone

    task = Task(_images(), np.array([0, 1] * 4), ("red", "blue"), "image", "toy")
    with pytest.raises(HeadstartError,
                       match=r"embeds images only; comparing images with their class names \(zero-shot, .* a CLIP"):
        Adapter(lambda p: tiny_backbone("mobilenetv2", p), "zero-shot", feature_cache=None).fit(task)


def test_a_template_without_its_placeholder_is_refused():
    from headstart.strategies import create_strategy

    with pytest.raises(HeadstartError, match="must hold {} once"):
        create_strategy("zero-shot", templates=("a photo",))


@pytest.mark.integration
def test_minilm_zero_shot_tells_topics_apart_by_their_names():
    texts = ["The striker scored twice in the final minutes of the match.", "Our team won the league on Sunday.",
             "The goalkeeper saved a penalty.", "Whisk the eggs with sugar, then fold in the flour.",
             "Simmer the sauce for ten minutes and add basil.", "Bake the bread at 220 degrees."] * 2
    labels = np.array([0, 0, 0, 1, 1, 1] * 2)
    task = Task(texts, labels, ("sports", "cooking"), "text", "topics")
    clf = Adapter("minilm-l6", "zero-shot", feature_cache=None).fit(task)
    assert (clf.predict(texts) == np.array(["sports", "cooking"])[labels]).mean() == 1.0


def test_with_no_training_inputs_the_head_assumes_unit_length_features():
    """Budget 0 gives zero-shot no inputs at all: the class rows then carry the encoder's scale as they are."""
    from headstart.strategies import create_strategy
    from headstart.train.model import AdaptedModel

    from .conftest import tiny_backbone

    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    empty = torch.empty(0, model.backbone.feature_dim)
    out = create_strategy("zero-shot").solve(model, empty, np.array([]), empty, np.array([]), classes=("good", "bad"))
    assert out["val_acc"] is None
    norms = model.head.weight.norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, model.backbone.zero_shot_scale), atol=1e-4)
    assert torch.equal(model.head.bias, torch.zeros(2))


def test_a_fit_without_examples_builds_zero_shot_from_the_class_names_alone(tmp_path):
    model, tokenizer, processor = _clip_folder(tmp_path)
    clf = Adapter(f"hf:{tmp_path}", "zero-shot", feature_cache=None).fit(None, classes=["red square", "blue circle"])
    assert list(clf.classes_) == ["red square", "blue circle"] and clf.modality_ == "image"
    assert set(clf.predict(_images(4))) <= {"red square", "blue circle"}
    assert any("class names alone" in n for n in clf.result_.notes)
    again = Adapter.load(clf.save(tmp_path / "saved"))
    assert again.predict_proba(_images(4)) == pytest.approx(clf.predict_proba(_images(4)), abs=1e-6)


@pytest.mark.parametrize(("strategy", "kwargs", "says"), [
    ("probe", {"classes": ["a", "b"]}, "probe learns from labelled examples; give some"),
    ("zero-shot", {}, "needs the class names, at least two"),
    ("zero-shot", {"classes": ["a", "a"]}, "must differ"),
])
def test_a_fit_without_examples_says_what_it_needs(strategy, kwargs, says):
    from .conftest import tiny_backbone

    with pytest.raises(HeadstartError, match=says):
        Adapter(lambda p: tiny_backbone("minilm-l6", p), strategy).fit(None, **kwargs)


def test_classes_beside_examples_are_refused(text_task):
    with pytest.raises(HeadstartError, match="classes= is for a fit without examples"):
        Adapter("minilm-l6", "zero-shot").fit(text_task, classes=["a", "b"])


def test_the_race_runs_clip_zero_shot_at_budget_zero_and_only_it(tmp_path):
    from headstart.race import RaceSpec, run_race

    _clip_folder(tmp_path / "clip")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, size=(36, 36, 3), dtype=np.uint8) for _ in range(80)]
    task = Task(images, np.array([0, 1] * 40), ("red square", "blue circle"), "image", "shapes")
    spec = RaceSpec("shapes", f"hf:{tmp_path / 'clip'}", strategies=["zero-shot", "probe"], budgets=[0, 4], seeds=1,
                    train_options={"epochs": 1})
    assert spec.skipped() == ("at 0 labels per class only zero-shot runs: probe learns from labels and starts at the "
                              "next budget.")
    records = run_race(spec, tmp_path / "race", task=task, progress=False)
    ran = sorted((r["strategy"], r["budget"]) for r in records)
    assert ran == [("probe", 4), ("zero-shot", 0), ("zero-shot", 4)]
    zero = next(r for r in records if r["budget"] == 0)
    assert zero["n_train"] == zero["n_val"] == 0 and zero["per_class"] == 0
    from headstart.report import write_report

    assert write_report(tmp_path / "race").is_file()  # the learning curve starts at 0 labels


def test_a_zero_budget_with_only_strategies_that_need_labels_is_refused():
    from headstart.race import RaceSpec

    with pytest.raises(HeadstartError, match=r"^No strategy of probe, full runs at 0 labels per class: at 0 labels "
                                             r"only a strategy that learns nothing"):
        RaceSpec("toy", "minilm-l6", strategies=["probe", "full"], budgets=[0, 8])


@pytest.mark.integration
def test_headstart_fit_at_budget_zero_builds_zero_shot_from_the_class_names(tmp_path, capsys):
    import json

    from headstart.cli import main

    main(["fit", "rotten-tomatoes", "--strategy", "zero-shot", "--budget", "0", "--out", str(tmp_path / "m"),
          "--json", "--quiet"])
    names = json.loads(capsys.readouterr().out)
    assert names["train"] == names["val"] == 0 and 0.0 <= names["test_accuracy"] <= 1.0
    assert (tmp_path / "m" / "adapter.safetensors").is_file()
    # "fresh" and "rotten" say little to a sentence encoder; the user's words say what they mean (0.53 -> 0.68)
    (tmp_path / "d.txt").write_text("fresh: a positive movie review | a film the critic loved\n"
                                    "rotten: a negative movie review | a film the critic disliked\n")
    main(["fit", "rotten-tomatoes", "--strategy", "zero-shot", "--budget", "0", "--out", str(tmp_path / "d"),
          "--json", "--quiet", "--class-descriptions", str(tmp_path / "d.txt")])
    described = json.loads(capsys.readouterr().out)
    assert described["test_accuracy"] > names["test_accuracy"] + 0.08


def test_the_class_descriptions_flag_reaches_zero_shot_and_only_it(tmp_path):
    from headstart.cli import build_parser
    from headstart.cli_train import train_options

    file = tmp_path / "d.txt"
    file.write_text("fresh: a positive movie review\nrotten: a negative movie review\n")
    parse = build_parser().parse_args
    args = parse(["compare", "rotten-tomatoes", "--out", str(tmp_path / "o"), "--strategies", "zero-shot,probe",
                  "--class-descriptions", str(file)])
    assert train_options(args)["zero-shot.descriptions"] == {"fresh": ("a positive movie review",),
                                                             "rotten": ("a negative movie review",)}
    args = parse(["fit", "rotten-tomatoes", "--out", str(tmp_path / "o"), "--strategy", "probe",
                  "--class-descriptions", str(file)])
    with pytest.raises(HeadstartError, match="--class-descriptions describes the classes for zero-shot"):
        train_options(args)


def test_a_code_beside_a_word_is_compared_by_its_name(text_task):
    from .conftest import tiny_backbone

    mixed = Task(text_task.inputs, text_task.labels, ("0", "positive"), "text", "toy")
    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None).fit(mixed)
    assert any("e.g. '0.'" in n for n in clf.result_.notes)
