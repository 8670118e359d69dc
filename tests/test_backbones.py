"""The backbone interface, checked on every registered entry's tiny build."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone
from headstart.errors import HeadstartError

from .conftest import REGISTERED, sample_inputs, tiny_backbone


@pytest.mark.parametrize("name", REGISTERED)
def test_features_have_the_declared_width(name):
    b = tiny_backbone(name).eval()
    feats = b.forward_features(b.preprocess(sample_inputs(b, 3)))
    assert feats.shape == (3, b.feature_dim)
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize("name", REGISTERED)
def test_blocks_run_in_order_and_compose_to_the_features(name):
    b = tiny_backbone(name).eval()
    state = b.preprocess(sample_inputs(b, 2))
    with torch.no_grad():
        whole = b.forward_features(state)
        k = len(b.blocks) // 2
        stepwise = b.pool(b.run_blocks(b.run_blocks(state, 0, k), k))
        swapped = list(b.blocks)
        assert len(swapped) >= 3 and len(b.block_names()) == len(swapped)
    torch.testing.assert_close(stepwise, whole)


@pytest.mark.parametrize("name", REGISTERED)
def test_random_init_twin_has_same_architecture_but_other_weights(name):
    pre, twin = tiny_backbone(name, True), tiny_backbone(name, False)
    a, b = pre.state_dict(), twin.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert pre.weights_id() != twin.weights_id()
    assert pre.preprocess_id == twin.preprocess_id


@pytest.mark.parametrize("name", REGISTERED)
def test_split_and_merge_states_round_trip(name):
    b = tiny_backbone(name).eval()
    with torch.no_grad():
        state = b.run_blocks(b.preprocess(sample_inputs(b, 3)), 0, 1)
        rebuilt = b.merge_states(b.split_state(state))
        torch.testing.assert_close(b.pool(b.run_blocks(rebuilt, 1)), b.pool(b.run_blocks(state, 1)))


@pytest.mark.parametrize("method", ["lora", "ia3", "ia3.feedforward"])
@pytest.mark.parametrize("name", REGISTERED)
def test_parameter_efficient_targets_name_real_layers(name, method):
    from headstart.strategies.tuner import TARGETS

    b = tiny_backbone(name)
    modules = dict(b.named_modules())
    targets = TARGETS[b.peft_family][method](b)
    assert all(isinstance(modules[t], (torch.nn.Linear, torch.nn.Conv2d)) for t in targets)
    assert targets or method == "ia3.feedforward"
    if method == "ia3.feedforward":  # a subset of IA3's targets
        assert set(targets) <= set(TARGETS[b.peft_family]["ia3"](b))


@pytest.mark.parametrize("name", REGISTERED)
def test_wrong_modality_is_a_clear_error(name):
    b = tiny_backbone(name)
    wrong = [np.zeros((8, 8, 3), np.uint8)] if b.modality == "text" else ["a sentence, not an image"]
    with pytest.raises(HeadstartError, match="text model|image model"):
        b.preprocess(wrong)


def test_weights_id_follows_the_weights():
    b = tiny_backbone("mobilenetv2")
    before, bottom = b.weights_id(), b.weights_id(stop=2)
    with torch.no_grad():
        next(b.blocks[-1].parameters()).add_(1.0)
    assert b.weights_id() != before and b.weights_id(stop=2) == bottom


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(HeadstartError) as err:
        create_backbone("resnet-9000")
    assert str(err.value).startswith("Unknown backbone 'resnet-9000'. Valid backbones: minilm-l6, hf:<repo")


def test_hf_local_folder_loads_the_saved_weights(tmp_path):
    from transformers import BertModel

    from headstart.backbones.text import tiny_bert_config, tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(1)
    BertModel(tiny_bert_config(len(tok))).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = create_backbone(f"hf:{tmp_path}")
    twin = create_backbone(f"hf:{tmp_path}", pretrained=False)
    reference = BertModel.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.blocks[1].layer.attention.self.query.weight,
                               reference.encoder.layer[0].attention.self.query.weight)
    assert loaded.weights_id() != twin.weights_id()
    assert loaded.forward_features(loaded.preprocess(["good movie"])).shape == (1, 32)


def test_hf_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(HeadstartError, match="is neither a folder that exists nor a hub id"):
        create_backbone(f"hf:{tmp_path / 'nothing-here'}")
    with pytest.raises(HeadstartError, match="Could not load hf:.*: the folder needs config.json, model.safetensors"):
        create_backbone(f"hf:{tmp_path}")  # a folder, but empty


def test_local_checkpoint_with_wrong_keys_is_a_clear_error(tmp_path):
    bad = tmp_path / "ckpt.pth"
    torch.save({"not.a.key": torch.zeros(1)}, bad)
    with pytest.raises(HeadstartError, match="does not match the architecture"):
        create_backbone("mobilenetv2", weights=str(bad))
