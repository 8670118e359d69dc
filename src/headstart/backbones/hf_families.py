"""How each Hugging Face text-encoder family is run block by block: one small class a family.

headstart runs a model's embeddings and each of its layers itself (so strategies can freeze, re-rate or
cache any prefix), which means it must call every layer exactly as the model's own forward does. Families
differ in what a layer needs besides the hidden states and the padding mask:

- BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT: nothing else (ELECTRA projects its narrower
  embeddings first);
- MPNet: a relative position bias, computed from one embedding table shared by every layer;
- DeBERTa-v2/v3: relative positions and the shared relative embeddings (layer-normed);
- ModernBERT: rotary position embeddings, local (sliding-window) or global attention per layer, and a
  final norm after the last layer.

A layer of a family that ``takes_prefix`` also takes learned keys and values that every token attends to
(prefix tuning): they reach its self-attention through the attention's cache argument, whose ``update``
returns them before the layer's own keys and values, and the padding mask grows by as many positions.

Modules every layer uses (MPNet's bias table, DeBERTa's relative embeddings) live in block 0 with the
embeddings, so each parameter belongs to exactly one block; a layer reaches them through
``shared``. Each family is tested block by block against the model's own forward
(``tests/test_hf_families.py``). Adding a family is one class here and its row in ``FAMILIES``, plus
its row of the parameter-efficient target table (``strategies/tuner.py``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["FAMILIES", "TextFamily", "embeddings_of", "family_of", "layer_list", "shared_modules", "supported_types"]


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def _bidirectional(config: Any, hidden: Tensor, mask: Tensor) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)


def _first(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


class _Prefix:
    """What a self-attention's ``cache.update(keys, values, layer_idx)`` needs: the learned keys and values put
    before the layer's own ones. Nothing is stored, so one forward pass never leaks into the next."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        self.keys, self.values = keys, values

    def update(self, keys: Tensor, values: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        return (torch.cat([self.keys.to(keys.dtype), keys], dim=2),
                torch.cat([self.values.to(values.dtype), values], dim=2))


class TextFamily:
    """BERT's way, the default: layers under ``encoder.layer`` taking the hidden states and a 4-d mask."""

    #: ``config.model_type`` values this class runs
    types: ClassVar[tuple[str, ...]] = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
    #: attribute path of the layer list, of the embeddings, and of modules every layer shares (name -> path)
    layers: ClassVar[str] = "encoder.layer"
    embeddings: ClassVar[str] = "embeddings"
    shared: ClassVar[dict[str, str]] = {}
    #: position ids start after the padding index (RoBERTa's scheme), so the usable length is that much shorter
    position_offset: ClassVar[tuple[str, ...]] = ("roberta", "xlm-roberta", "camembert")
    #: the row of the parameter-efficient target table (``strategies/tuner.py``)
    peft: ClassVar[str] = "bert"
    #: attribute path of a norm applied after the last layer (it joins the last block), if the family has one
    final_norm: ClassVar[str | None] = None
    #: its layers take learned key/value prefixes (prefix tuning), through their attention's cache argument
    takes_prefix: ClassVar[bool] = True
    #: attribute path, within a layer, of the self-attention whose ``key`` and ``value`` projections a prefix joins
    self_attention: ClassVar[str] = "attention.self"

    def refuse(self, config: Any) -> str | None:
        """Why this checkpoint cannot run block by block although its family can (None: it can)."""
        return None

    def positions(self, config: Any) -> int | None:
        positions = getattr(config, "max_position_embeddings", None)
        if positions is not None and config.model_type in self.position_offset:
            positions -= int(config.pad_token_id or 0) + 1
        return positions

    def embed(self, block: nn.Module, input_ids: Tensor, mask: Tensor) -> Tensor:
        hidden = block.embeddings(input_ids=input_ids)
        project = getattr(block, "project", None)  # ELECTRA: embeddings narrower than the layers
        return project(hidden) if project is not None else hidden

    def layer(self, layer: nn.Module, hidden: Tensor, mask: Tensor, shared: dict[str, nn.Module],
              config: Any, prefix: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``prefix``: learned (keys, values), each ``[batch, heads, tokens, head_dim]``, that every token attends to
        before the sequence's own (a family that does not ``takes_prefix`` is never given one)."""
        if prefix is None:
            return _first(layer(hidden, _bidirectional(config, hidden, mask)))
        keys, values = prefix
        wide = torch.cat([mask.new_ones(mask.shape[0], keys.shape[2]), mask], dim=1)
        return _first(layer(hidden, _bidirectional(config, hidden, wide), cache=_Prefix(keys, values)))


class DistilBert(TextFamily):
    types = ("distilbert",)
    takes_prefix = False  # its attention takes no cache argument
    layers = "transformer.layer"
    peft = "distilbert"

    def embed(self, block: nn.Module, input_ids: Tensor, mask: Tensor) -> Tensor:
        return block.embeddings(input_ids)


class MPNet(TextFamily):
    """Each layer adds a relative position bias from ``encoder.relative_attention_bias``."""

    types = ("mpnet",)
    takes_prefix = False  # its attention takes no cache argument
    shared = {"relative_attention_bias": "encoder.relative_attention_bias"}
    position_offset = ("mpnet",)
    peft = "mpnet"

    def layer(self, layer, hidden, mask, shared, config):
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

        table = SimpleNamespace(relative_attention_bias=shared["relative_attention_bias"],
                                relative_position_bucket=MPNetEncoder.relative_position_bucket)
        bias = MPNetEncoder.compute_position_bias(table, hidden)  # the encoder's own computation, on the shared table
        return _first(layer(hidden, _bidirectional(config, hidden, mask), bias))


class DebertaV2(TextFamily):
    """Disentangled attention: relative positions and the (layer-normed) shared relative embeddings."""

    types = ("deberta-v2",)
    takes_prefix = False  # its attention takes no cache argument
    shared = {"rel_embeddings": "encoder.rel_embeddings", "LayerNorm": "encoder.LayerNorm"}
    peft = "deberta-v2"

    def refuse(self, config):
        if getattr(config, "conv_kernel_size", 0) > 0:
            return ("its first layer adds a convolution over the embeddings (conv_kernel_size > 0, as in "
                    "DeBERTa-v2 xlarge), which a block boundary would cut; DeBERTa-v3 checkpoints have none")
        return None

    def layer(self, layer, hidden, mask, shared, config):
        from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder

        positions = getattr(config, "max_relative_positions", -1)
        encoder = SimpleNamespace(  # what the encoder's own helpers read, from the config and the shared modules
            relative_attention=getattr(config, "relative_attention", False),
            max_relative_positions=positions if positions >= 1 else config.max_position_embeddings,
            position_buckets=getattr(config, "position_buckets", -1),
            norm_rel_ebd=[x.strip() for x in getattr(config, "norm_rel_ebd", "none").lower().split("|")],
            rel_embeddings=shared.get("rel_embeddings"), LayerNorm=shared.get("LayerNorm"))
        attention = DebertaV2Encoder.get_attention_mask(encoder, mask)
        relative_pos = DebertaV2Encoder.get_rel_pos(encoder, hidden)
        rel_embeddings = DebertaV2Encoder.get_rel_embedding(encoder)
        return _first(layer(hidden, attention, relative_pos=relative_pos, rel_embeddings=rel_embeddings))

    def embed(self, block, input_ids, mask):
        return block.embeddings(input_ids=input_ids, mask=mask)


class ModernBert(TextFamily):
    """Rotary positions, global or sliding-window attention per layer, and a norm after the last layer."""

    types = ("modernbert",)
    takes_prefix = False  # its attention takes no cache argument
    layers = "layers"
    shared = {"rotary_emb": "rotary_emb"}
    final_norm = "final_norm"
    peft = "modernbert"

    def layer(self, layer, hidden, mask, shared, config):
        from transformers.masking_utils import create_bidirectional_sliding_window_mask

        kind = layer.attention_type
        if kind == "sliding_attention":
            attention = create_bidirectional_sliding_window_mask(config=config, inputs_embeds=hidden,
                                                                 attention_mask=mask)
        else:
            attention = _bidirectional(config, hidden, mask)
        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        rotary = shared["rotary_emb"](hidden, positions, kind)
        return _first(layer(hidden, attention_mask=attention, position_embeddings=rotary))


FAMILIES: tuple[TextFamily, ...] = (TextFamily(), DistilBert(), MPNet(), DebertaV2(), ModernBert())


def family_of(model_type: str) -> TextFamily | None:
    return next((f for f in FAMILIES if model_type in f.types), None)


def supported_types() -> list[str]:
    return [t for f in FAMILIES for t in f.types]


def shared_modules(family: TextFamily, model: nn.Module) -> dict[str, nn.Module]:
    found = {name: _get(model, path) for name, path in family.shared.items()}
    return {name: module for name, module in found.items() if module is not None}


def layer_list(family: TextFamily, model: nn.Module) -> Any:
    return _get(model, family.layers)


def embeddings_of(family: TextFamily, model: nn.Module) -> nn.Module | None:
    return _get(model, family.embeddings)
