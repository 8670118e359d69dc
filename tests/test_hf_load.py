"""Loading ``hf:`` safely: safetensors only, never a repo's own code, a hub id pinned to the commit it resolves
to (in the saved model and a race's run keys), and one sentence for what cannot be loaded.

The "hub" here is a Hugging Face cache folder built in the test, read in offline mode: no network.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone
from headstart.backbones.hf_load import parse_ref, pin
from headstart.errors import HeadstartError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tiny_bert(folder):
    from transformers import BertModel

    from headstart.backbones.text import tiny_bert_config, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model = BertModel(tiny_bert_config(len(tokenizer)), add_pooling_layer=False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An offline HF cache holding ``org/tiny`` at ``COMMIT`` (its main branch), as a download leaves it."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    snapshot = repo / "snapshots" / COMMIT
    _tiny_bert(snapshot)
    (snapshot / "modules.json").write_text(json.dumps([  # a sentence-transformers repo that pools CLS, normalised
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (snapshot / "1_Pooling").mkdir()
    (snapshot / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_hub_id_is_pinned_to_the_commit_its_branch_resolves_to(hub, tmp_path):
    assert pin("hf:org/tiny") == f"hf:org/tiny@{COMMIT}"
    assert pin("hf:org/tiny@main") == f"hf:org/tiny@{COMMIT}"
    assert pin(f"hf:org/tiny@{COMMIT}") == f"hf:org/tiny@{COMMIT}"
    assert pin("minilm-l6") == "minilm-l6" and pin(f"hf:{hub}") == f"hf:{hub}"  # packaged and folders: as they are
    backbone = create_backbone(f"hf:org/tiny@{COMMIT}")
    assert backbone.source == f"Hugging Face hub @ {COMMIT}"
    assert backbone.pool_id == "cls+normalize"  # its pooling files are read from the same commit


TEXTS = ["a good film", "great fun", "love this movie", "bad plot", "awful and dull", "hate it"] * 2
LABELS = [1, 1, 1, 0, 0, 0] * 2


def test_a_model_fitted_on_a_hub_id_saves_the_commit_and_loads_it_again(hub, tmp_path):
    from headstart import Adapter

    clf = Adapter("hf:org/tiny", "probe", feature_cache=None, epochs=2).fit(TEXTS, LABELS)
    folder = clf.save(tmp_path / "model")
    saved = json.loads((folder / "adapter.json").read_text())["backbone"]
    assert saved["registered_name"] == f"hf:org/tiny@{COMMIT}" and COMMIT in saved["source"]
    assert clf.get_params()["backbone"] == "hf:org/tiny"  # what the user set stays as they set it
    again = Adapter.load(folder)
    assert again.predict_proba(TEXTS[:3]) == pytest.approx(clf.predict_proba(TEXTS[:3]), abs=1e-6)


def test_a_race_on_a_hub_id_keys_its_runs_by_the_commit(hub, tmp_path):
    from headstart.data import Task
    from headstart.race import RaceSpec, prepare_race, run_race

    texts = [f"{text} {i}" for i, text in enumerate(TEXTS * 4)]  # distinct texts: duplicates are set aside
    task = Task(texts, np.array(LABELS * 4), ("0", "1"), "text", "toy")
    spec = RaceSpec("toy", "hf:org/tiny", strategies=["probe"], budgets=[4], seeds=1,
                    train_options={"epochs": 1})
    (record,) = run_race(spec, tmp_path / "race", task=task, progress=False)
    assert spec.backbone == "hf:org/tiny"  # the caller's spec is left as it was
    data = prepare_race(spec, task)
    (run,) = spec.runs()
    pinned = replace(spec, backbone=f"hf:org/tiny@{COMMIT}")
    assert record["key"] == pinned.run_key(run, data.fingerprint) != spec.run_key(run, data.fingerprint)


def test_a_checkpoint_with_only_pickle_weights_is_refused(tmp_path):
    model = _tiny_bert(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(HeadstartError, match=r"it has only pickle weights \(pytorch_model.bin\).*safetensors only"):
        create_backbone(f"hf:{tmp_path}")


def test_a_repo_that_needs_its_own_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "my-encoder", "auto_map": {"AutoConfig": "conf.MyConfig", "AutoModel": "model.MyModel"}}))
    with pytest.raises(HeadstartError, match="headstart never runs \\(trust_remote_code\\)"):
        create_backbone(f"hf:{tmp_path}")


def test_an_id_neither_cached_nor_reachable_is_one_sentence(hub):
    with pytest.raises(HeadstartError, match=r"^Could not load hf:org/elsewhere: no model hub is reachable and it "
                                             r"is not in the Hugging Face cache"):
        create_backbone("hf:org/elsewhere")


def test_a_family_transformers_has_but_headstart_does_not_run_is_named(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=99)).save_pretrained(tmp_path)
    with pytest.raises(HeadstartError, match=r"the 'gpt2' family is not supported .*text: bert.*images: vit"):
        create_backbone(f"hf:{tmp_path}")


@pytest.mark.parametrize("arg", ["org/model@", "a/b/c", "./not-here", "org/mo del"])
def test_an_argument_that_is_neither_a_folder_nor_a_hub_id_is_one_sentence(arg):
    with pytest.raises(HeadstartError, match="is neither a folder that exists nor a hub id"):
        parse_ref(arg)


def test_a_size_option_of_the_other_modality_is_refused(tmp_path):
    _tiny_bert(tmp_path)
    with pytest.raises(HeadstartError, match=r"--image-size does not apply to hf:.*, a text backbone; it takes "
                                             "--max-length"):
        create_backbone(f"hf:{tmp_path}", image_size=64)


def test_a_text_option_given_to_an_image_checkpoint_is_refused(tmp_path):
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    assert create_backbone(f"hf:{tmp_path}").modality == "image"
    with pytest.raises(HeadstartError, match=r"--max-length does not apply to hf:.*, an image backbone; it takes no "
                                             "size option"):
        create_backbone(f"hf:{tmp_path}", max_length=64)


def test_headstart_backbones_describes_an_hf_folder_before_any_training(tmp_path, capsys):
    from transformers import ConvNextConfig, ConvNextImageProcessorPil, ConvNextModel

    from headstart.cli import main

    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1])).save_pretrained(tmp_path)
    ConvNextImageProcessorPil(size={"shortest_edge": 32}).save_pretrained(tmp_path)
    main(["backbones", f"hf:{tmp_path}", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["usable"] and d["modality"] == "image" and d["family"] == "convnext"
    assert [b["name"] for b in d["blocks"]] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert sum(b["parameters"] for b in d["blocks"]) == d["parameters"]
    assert {"lora", "ia3", "partial:1..5", "lldr"} <= set(d["strategies"])
    with pytest.raises(SystemExit) as exit_:
        main(["backbones", f"hf:{tmp_path / 'missing'}"])
    assert exit_.value.code == 1
    assert "not usable here" in capsys.readouterr().out
