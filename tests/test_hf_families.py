"""``hf:`` text encoders, family by family: headstart runs the embeddings and each layer itself, so for every
family it accepts, its block-by-block hidden states must equal the model's own forward pass; a family whose
layers need more than the hidden states and the mask (MPNet's relative position bias, DeBERTa's relative
positions) is refused with one sentence instead of giving a wrong model.

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
             "electra": (tf.ElectraConfig, tf.ElectraModel), "camembert": (tf.CamembertConfig, tf.CamembertModel)}
NOT_YET = {"mpnet": (tf.MPNetConfig, tf.MPNetModel), "deberta-v2": (tf.DebertaV2Config, tf.DebertaV2Model),
           "deberta": (tf.DebertaConfig, tf.DebertaModel)}


def _model(config_cls, model_cls, tokenizer):
    torch.manual_seed(0)
    config = config_cls(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SIZE)
    return model_cls(config).eval()


@pytest.mark.parametrize("family", sorted(BLOCKWISE))
def test_block_by_block_equals_the_models_own_forward(family):
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(*BLOCKWISE[family], tokenizer)
    backbone = HFTextBackbone(model, tokenizer, name=f"hf:{family}", pretrained=True, source="test").eval()
    state = backbone.preprocess(["a good film", "bad"])  # two lengths: padding and its mask matter
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
    assert message.startswith(f"hf:{family}: the {family!r} family is not supported yet") and "bert" in message


def test_roberta_reads_its_position_table_less_the_padding_offset():
    tokenizer = tiny_backbone("minilm-l6").tokenizer
    model = _model(*BLOCKWISE["roberta"], tokenizer)  # 64 positions, the first pad_token_id + 1 never used
    usable = 64 - tokenizer.pad_token_id - 1
    fits = HFTextBackbone(model, tokenizer, name="r", pretrained=True, source="t", max_length=usable)
    assert fits.max_length == usable
    with pytest.raises(HeadstartError, match=f"its position table holds {usable} tokens"):
        HFTextBackbone(model, tokenizer, name="r", pretrained=True, source="t", max_length=usable + 1)
