"""The one interface every adaptation strategy relies on.

A backbone is a stack of blocks, ordered from input to output. Data flows through it as a *state*:
a dict of batch-first tensors. ``preprocess`` turns raw inputs into the first state, block ``i`` maps
a state to the next one, and ``pool`` turns the last state into one feature vector per example::

    state = backbone.preprocess(raw_inputs)          # tokenise / resize, crop, normalise
    state = backbone.run_blocks(state, 0, k)         # the frozen bottom ...
    feats = backbone.pool(backbone.run_blocks(state, k))  # ... and the trainable top

Because the boundary between any two blocks is an explicit state, strategies can freeze "all but the
top k blocks", give each block its own learning rate, or cache the output of a frozen bottom, without
knowing what the blocks are. Override points for a new backbone (see ``text.py``, ``mobilenetv2.py``):

- ``preprocess(inputs) -> State`` and ``preprocess_id`` (what the cache keys on);
- ``blocks`` (an ``nn.ModuleList`` of modules taking and returning a state);
- ``pool(state) -> Tensor[B, feature_dim]``;
- ``peft_family``: the row of the parameter-efficient methods' target table (``strategies/tuner.py``) whose
  rules name the layers LoRA, IA3, ... adapt (``None``: none of them apply);
- ``split_state``/``merge_states`` only if a state has a variable-length axis (text);
- ``small_twin()``: a small model for the same inputs, the ``scratch-small`` baseline;
- ``embed_prompts(texts)`` and ``zero_shot_scale`` only for an image encoder with a text tower (CLIP).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["Backbone", "Modality", "State"]

State = dict[str, Tensor]
Modality = Literal["text", "image"]


class Backbone(nn.Module, ABC):
    """Pretrained (or random-init twin) encoder exposing features, ordered blocks and preprocessing."""

    #: registry name, e.g. ``"minilm-l6"``; set by the factory
    name: str = ""
    #: the learning rate that trains this architecture from a random init (the ``scratch`` baseline):
    #: conv nets take 1e-3 with AdamW; transformers collapse to one class there and need about 1e-4
    scratch_lr: float = 1e-3
    #: which row of the parameter-efficient target table applies (``"bert"``, ``"conv"``; None: no PEFT method)
    peft_family: str | None = None
    #: the scale zero-shot gives cosine similarities to class prompts (CLIP: its own learned logit scale)
    zero_shot_scale: float = 20.0
    modality: Modality
    feature_dim: int
    blocks: nn.ModuleList

    def __init__(self, *, name: str, pretrained: bool, source: str) -> None:
        super().__init__()
        self.name = name
        self.pretrained = pretrained
        self.source = source

    # -- override points ---------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, inputs: Sequence[Any]) -> State:
        """Raw inputs (texts, or images as paths/arrays/PIL images) to the state block 0 takes."""

    @property
    @abstractmethod
    def preprocess_id(self) -> str:
        """A short string that changes whenever ``preprocess`` would give different tensors."""

    @abstractmethod
    def pool(self, state: State) -> Tensor:
        """The last state to one feature vector per example, ``[batch, feature_dim]``."""

    def small_twin(self) -> Backbone:
        """A small model for the same inputs, trained from scratch (see ``small.py``); random init."""
        from ..errors import HeadstartError

        raise HeadstartError(f"{self.name} has no small from-scratch model; use the 'scratch' strategy instead.")

    def embed_prompts(self, texts: Sequence[str]) -> Tensor:
        """Texts embedded in the space of this backbone's features (what ``zero-shot`` compares examples with):
        a text encoder embeds them itself; an image encoder needs a text tower of its own (CLIP)."""
        from ..errors import HeadstartError

        if self.modality == "text":
            return self.embed(list(texts))
        raise HeadstartError(f"{self.name} embeds images only; comparing images with their class names "
                             "(zero-shot, prototype's prior=names) needs a model that embeds text in the same "
                             "space, a CLIP checkpoint (e.g. hf:openai/clip-vit-base-patch32).")

    def source_head(self) -> nn.Linear | None:
        """The pretraining task's classifier over pooled features (MobileNetV2's ImageNet-1k head), kept outside the
        module tree (never trained, never saved); None when the checkpoint has none. Guards against forgetting keep
        its predictions (``train/reference.py``)."""
        return None

    def block_names(self) -> list[str]:
        """Human-readable names of the blocks, input to output."""
        return [f"block{i}" for i in range(len(self.blocks))]

    def split_state(self, state: State) -> list[State]:
        """A batched state into one state per example (for caching)."""
        n = next(iter(state.values())).shape[0]
        return [{k: v[i] for k, v in state.items()} for i in range(n)]

    def merge_states(self, states: Sequence[State]) -> State:
        """The inverse of ``split_state``."""
        return {k: torch.stack([s[k] for s in states]) for k in states[0]}

    # -- the shared machinery ----------------------------------------------------------------
    def run_blocks(self, state: State, start: int = 0, stop: int | None = None) -> State:
        for block in self.blocks[start:stop]:
            state = block(state)
        return state

    def forward_features(self, state: State) -> Tensor:
        """Pooled features of a preprocessed batch: every block, then ``pool``."""
        return self.pool(self.run_blocks(state))

    def forward(self, state: State) -> Tensor:
        return self.forward_features(state)

    @torch.no_grad()
    def embed(self, inputs: Sequence[Any], batch_size: int = 32) -> Tensor:
        """Features for raw inputs in eval mode: the convenient one-liner for users."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(inputs), batch_size):
            state = {k: v.to(device) for k, v in self.preprocess(inputs[i : i + batch_size]).items()}
            out.append(self.forward_features(state).cpu())
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.feature_dim)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def weights_id(self, stop: int | None = None) -> str:
        """sha256 (first 16 hex) over the weights of blocks ``[0, stop)``: what a feature cache keys on."""
        h = hashlib.sha256()
        for i, block in enumerate(self.blocks[:stop]):
            for key, tensor in sorted(block.state_dict().items()):
                h.update(f"{i}.{key}".encode())
                # hashed through numpy's buffer: no copy of the weights
                h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        return h.hexdigest()[:16]

    @property
    def pool_id(self) -> str:
        """A short string that changes whenever ``pool`` would map the same state to other features ("": the
        one way this class pools); a text encoder's is its pooling, e.g. ``"mean+normalize"``."""
        return ""

    def identity(self) -> dict[str, Any]:
        """What a saved adapter records to refuse loading onto a different backbone."""
        return {"name": self.name, "pretrained": self.pretrained, "source": self.source,
                "preprocess": self.preprocess_id, "weights": self.weights_id(),
                **({"pooling": self.pool_id} if self.pool_id else {})}
