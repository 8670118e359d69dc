"""``hf:`` text encoders, family by family: headstart runs the embeddings and each layer itself, so for every
family it accepts, its block-by-block hidden states must equal the model's own forward pass (MPNet's relative
position bias, DeBERTa-v3's relative positions, ModernBERT's rotary positions and sliding-window layers
included); a family it cannot run is refused with one sentence instead of giving a wrong model.

Tiny configurations built here (``from_config``): no weights, no network.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from headstart.backbones.text import HFTextBackbone
from headstart.errors import HeadstartError

from .conftest import tiny_backbone

SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
        "max_position_embeddings": 64}
BLOCKWISE = {"bert": (tf.BertConfig, tf.BertModel), "roberta": (tf.RobertaConfig, tf.RobertaModel),
             "xlm-roberta": (tf.XLMRobertaConfig, tf.XLMRobertaModel),
             "electra": (tf.ElectraConfig, tf.ElectraModel), "camembert": (tf.CamembertConfig, tf.CamembertModel),
             "mpnet": (tf.MPNetConfig, tf.MPNetModel), "deberta-v2": (tf.DebertaV2Config, tf.DebertaV2Model),
             "distilbert": (tf.DistilBertConfig, tf.DistilBertModel),
             "modernbert": (tf.ModernBertConfig, tf.ModernBertModel)}
#: what each family's config calls the sizes, and the settings that make its special paths run on short texts
EXTRA = {
    "electra": {"embedding_size": 16},  # narrower embeddings: the projection is part of block 0
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 37},
    # DeBERTa-v3's settings: relative attention in buckets, layer-normed relative embeddings, no absolute positions
    "deberta-v2": {"relative_attention": True, "position_buckets": 8, "norm_rel_ebd": "layer_norm",
                   "pos_att_type": ["p2c", "c2p"], "position_biased_input": False, "share_att_key": True},
    # layer 0 global, layer 1 a 4-token sliding window: shorter than the texts below
    "modernbert": {"global_attn_every_n_layers": 2, "local_attention": 4},
}
NOT_YET = {"deberta": (tf.DebertaConfig, tf.DebertaModel), "albert": (tf.AlbertConfig, tf.AlbertModel)}
TEXTS = ["a good film", "the movie was not good but the actor was great and the plot was fun"]


def _model(config_cls, model_cls, tokenizer, family=""):
    torch.manual_seed(0)
    config = config_cls(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SIZE,
                        **EXTRA.get(family, {}))
    return model_cls(config).eval()


@pytest.mark.parametrize("family", sorted(BLOCKWISE))
def test_block_by_block_equals_the_models_own_forward(family):
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(*BLOCKWISE[family], tokenizer, family)
    backbone = HFTextBackbone(model, tokenizer, name=f"hf:{family}", pretrained=True, source="test").eval()
    state = backbone.preprocess(TEXTS)  # two lengths: padding and its mask matter
    with torch.no_grad():
        ours = backbone.run_blocks(state)["hidden"]
        theirs = model(input_ids=state["input_ids"], attention_mask=state["attention_mask"]).last_hidden_state
    real = state["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-5), family


@pytest.mark.parametrize("family", sorted(NOT_YET))
def test_a_family_whose_layers_need_more_than_the_mask_is_refused(family):
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(*NOT_YET[family], tokenizer)
    with pytest.raises(HeadstartError) as err:
        HFTextBackbone(model, tokenizer, name=f"hf:{family}", pretrained=True, source="test")
    message = str(err.value)
    assert message.startswith(f"hf:{family}: the {family!r} family is not supported") and "mpnet" in message


def test_a_deberta_v2_checkpoint_with_the_embedding_convolution_is_refused():
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(tf.DebertaV2Config, tf.DebertaV2Model, tokenizer, "deberta-v2")
    model.config.conv_kernel_size = 3
    with pytest.raises(HeadstartError, match="this deberta-v2 checkpoint cannot be used: its first layer adds a "
                                             "convolution"):
        HFTextBackbone(model, tokenizer, name="hf:x", pretrained=True, source="test")


def test_roberta_reads_its_position_table_less_the_padding_offset():
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(*BLOCKWISE["roberta"], tokenizer)  # 64 positions, the first pad_token_id + 1 never used
    usable = 64 - tokenizer.pad_token_id - 1
    fits = HFTextBackbone(model, tokenizer, name="r", pretrained=True, source="t", max_length=usable)
    assert fits.max_length == usable
    with pytest.raises(HeadstartError, match=f"its position table holds {usable} tokens"):
        HFTextBackbone(model, tokenizer, name="r", pretrained=True, source="t", max_length=usable + 1)


@pytest.mark.parametrize("family", sorted(BLOCKWISE))
def test_every_layer_of_every_family_has_lora_and_ia3_targets(family):
    from headstart.strategies.tuner import peft_targets

    tokenizer = tiny_backbone("minilm-l6").tokenizer
    backbone = HFTextBackbone(_model(*BLOCKWISE[family], tokenizer, family), tokenizer, name=f"hf:{family}",
                              pretrained=True, source="test")
    for method, per_layer in (("lora", 4), ("ia3", 2)):
        targets = peft_targets(backbone, method)
        for i in range(1, len(backbone.blocks)):
            assert len([t for t in targets if t.startswith(f"blocks.{i}.")]) >= per_layer, (family, method, i)
        assert not [t for t in targets if t.startswith("blocks.0.")], (family, method)  # never the embeddings
    feedforward = peft_targets(backbone, "ia3.feedforward")
    assert feedforward and set(feedforward) <= set(peft_targets(backbone, "ia3")), family
    norms = peft_targets(backbone, "ln-tuning")  # every layer's LayerNorms (the embeddings' too)
    assert all(any(t.startswith(f"blocks.{i}.") for t in norms) for i in range(1, len(backbone.blocks))), family


WORDS = ["a good film", "great fun", "love this movie", "bad plot", "awful and dull", "hate it"] * 2
LABELS = [1, 1, 1, 0, 0, 0] * 2


@pytest.mark.parametrize("family", sorted(BLOCKWISE))
def test_a_saved_checkpoint_of_each_family_fits_saves_and_loads_as_hf_folder(family, tmp_path):
    """``hf:<folder>`` of a ``save_pretrained`` checkpoint, through the strategies that cut it into blocks."""
    from headstart import Adapter
    from headstart.backbones.text import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    _model(*BLOCKWISE[family], tokenizer, family).save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    for strategy in ("partial:1", "lldr", "lora"):
        clf = Adapter(f"hf:{tmp_path / 'ckpt'}", strategy, feature_cache=None, epochs=2, lr=1e-3)
        clf.fit(WORDS, LABELS)
        saved = clf.save(tmp_path / strategy)
        again = Adapter.load(saved)
        assert (again.predict_proba(WORDS[:4]) == pytest.approx(clf.predict_proba(WORDS[:4]), abs=1e-5)), strategy
