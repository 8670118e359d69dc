"""``prefix``: prefix tuning (Li & Liang, ACL 2021): learned keys and values in every layer, the body frozen.

Each transformer layer gets ``tokens`` learned key/value pairs (PEFT's ``PrefixEncoder``, one per
layer, without its reparameterising MLP: PEFT's default) that every real token attends to before the
sequence's own; nothing is added to the sequence itself, so the pooling is unchanged. PEFT's own route
hands them to the model's ``forward`` as ``past_key_values``, which headstart never calls (it runs the
embeddings and each layer itself, block by block); here each layer block owns its prefix, and the family
passes it to the layer's self-attention through the attention's cache argument (``hf_families.py``),
with the padding mask widened by as many always-visible positions. Families whose attention takes no
cache (DistilBERT, MPNet, DeBERTa, ModernBERT) are refused in one sentence, as are image backbones.

They start as the key and value projections of the states real tokens (sampled from the vocabulary)
reach each layer with, the initialisation Li & Liang found stabler than random values; the probe's head
is fitted on the prefixed features, so the fine-tune's epoch 0 is that probe.

The feature cache keeps what it can: the embeddings block (block 0) is untouched, so its output is
computed once and cached, but every layer changes, so each step runs all of them forward and backward
(the weight-space methods' frozen bottom, a prompt's too, is no cheaper). It trains
``layers × tokens × 2 × hidden`` numbers (6 × 20 × 2 × 384 = 92,160 on MiniLM). It is not a weight
update, so it does not merge: an ONNX export carries the prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..declare import option
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import register_strategy
from .tuner import NamedTensors

PREFIX = "attention_prefix"


class AttentionPrefix(nn.Module):
    """One layer's learned keys and values (PEFT's ``PrefixEncoder`` for one layer), batched for a forward pass."""

    def __init__(self, tokens: int, heads: int, dim: int) -> None:
        from peft import PrefixEncoder, PrefixTuningConfig

        super().__init__()
        config = PrefixTuningConfig(num_virtual_tokens=tokens, token_dim=dim, num_layers=1, num_attention_heads=heads,
                                    num_transformer_submodules=1, encoder_hidden_size=dim,
                                    task_type="FEATURE_EXTRACTION")
        self.encoder = PrefixEncoder(config)
        self.heads = heads

    def forward(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(keys, values), each ``[batch, heads, tokens, head_dim]`` for ``hidden``'s batch."""
        n = self.encoder.embedding.num_embeddings
        kv = self.encoder(torch.arange(n, device=hidden.device).unsqueeze(0))  # [1, tokens, 2·dim], PEFT's layout
        kv = kv.view(1, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # [2, 1, heads, tokens, head_dim]
        batch = hidden.shape[0]
        return kv[0].expand(batch, -1, -1, -1), kv[1].expand(batch, -1, -1, -1)


@register_strategy
@dataclass
class PrefixTuning(NamedTensors):
    name = "prefix"
    order = 69
    summary = "learned keys and values in every layer (prefix tuning, PEFT's PrefixEncoder), the body frozen"
    prefix = PREFIX
    adds = PREFIX
    default_lr = 5e-3
    modalities = ("text",)
    tokens: int = option(20, "learned key/value pairs per layer", low=1)

    def configure(self, model: AdaptedModel) -> None:
        backbone = model.backbone
        layers = list(backbone.blocks)[1:]
        if not layers or not all(getattr(layer, "takes_prefix", False) for layer in layers):
            family = getattr(backbone, "family", backbone.name)
            raise HeadstartError(f"prefix tuning passes learned keys and values to each layer's attention, which "
                                 f"{backbone.name} ({family}) does not take; use prompt, lora or ia3 on it, or a BERT, "
                                 "RoBERTa, XLM-R, CamemBERT or ELECTRA encoder.")
        if hasattr(layers[0], PREFIX):
            return  # configured already (a second fit on the same model, or loading)
        starts = self._real_token_keys(model)
        for layer, start in zip(layers, starts):
            attention = layer.self_attention()
            prefix = AttentionPrefix(self.tokens, attention.num_attention_heads, backbone.feature_dim)
            with torch.no_grad():
                prefix.encoder.embedding.weight.copy_(start)
            layer.add_module(PREFIX, prefix.to(start.device))

    @torch.no_grad()
    def _real_token_keys(self, model: AdaptedModel) -> list[Tensor]:
        """Per layer, ``[tokens, 2·dim]``: the key and value projections of sampled vocabulary at that layer (eval
        mode: no dropout drawn, nothing else touched)."""
        backbone = model.backbone
        training = backbone.training
        backbone.eval()
        device = next(backbone.parameters()).device
        ids = torch.randint(0, len(backbone.tokenizer), (1, self.tokens)).to(device)
        state = backbone.blocks[0]({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        starts = []
        for layer in list(backbone.blocks)[1:]:
            attention, hidden = layer.self_attention(), state["hidden"]
            starts.append(torch.cat([attention.key(hidden)[0], attention.value(hidden)[0]], dim=-1).float())
            state = layer(state)
        backbone.train(training)
        return starts

    def plan(self, n_blocks: int) -> ParamPlan:
        # only the layers' prefixes: the embeddings block stays frozen, so its output is cached
        return ParamPlan({i: 1.0 for i in range(1, n_blocks)}, only=self.prefix)
