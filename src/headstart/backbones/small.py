"""Small models trained from scratch: the baselines a pretrained backbone has to beat on small data.

A from-scratch twin of a 22 M-parameter transformer or a 2 M-parameter MobileNetV2 is a straw man
on a few hundred labels: it has far more capacity than the data can fit. What a practitioner would
train instead is small:

- images: **Conv-4** (four 3×3 conv, BatchNorm, ReLU, 2×2 max-pool stages; the standard
  from-scratch baseline of few-shot learning, Vinyals et al. 2016, Snell et al. 2017), on the
  backbone's own preprocessing (same resolution and normalisation);
- text: a **bag of n-grams** (fastText, Joulin et al. 2017): embeddings of the backbone's word
  pieces and of hashed word-piece bigrams, averaged, then the linear head.

Each is a ``Backbone`` with the same interface, so the loop, early stopping, save and load work as
for any other; ``Backbone.small_twin()`` builds one with the preprocessing of the backbone it
replaces.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .base import Backbone, State
from .tokenized import TokenizedText

__all__ = ["NgramBag", "conv4"]


def conv4(transform: Any, *, width: int = 64, name: str) -> Backbone:
    """Conv-4 on ``transform``'s images; ``width`` channels in every stage, ``width`` features."""
    from .vision import ConvBackbone

    def stage(cin: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    backbone = ConvBackbone([stage(3), stage(width), stage(width), stage(width)], width, transform,
                            name=name, pretrained=False, source=f"conv-4 (width {width}), random init")
    backbone.scratch_lr = 1e-3
    return backbone


class _NgramEmbedding(nn.Module):
    """Block 0: word-piece embeddings plus hashed bigram embeddings, per token position."""

    def __init__(self, vocab_size: int, dim: int, buckets: int) -> None:
        super().__init__()
        self.unigrams = nn.Embedding(vocab_size, dim)
        self.bigrams = nn.Embedding(buckets, dim)
        self.buckets = buckets
        for e in (self.unigrams, self.bigrams):
            nn.init.uniform_(e.weight, -1.0 / dim, 1.0 / dim)  # fastText's init

    def forward(self, state: State) -> State:
        ids, mask = state["input_ids"], state["attention_mask"]
        hidden = self.unigrams(ids)
        pair = (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % self.buckets
        both = (mask[:, :-1] * mask[:, 1:]).unsqueeze(-1).to(hidden.dtype)
        hidden[:, 1:] = hidden[:, 1:] + self.bigrams(pair) * both  # bigram (i-1, i) added at position i
        return {"hidden": hidden, "attention_mask": mask}


class NgramBag(TokenizedText, Backbone):
    """fastText-style text model over a tokenizer: mean of unigram + hashed bigram embeddings."""

    modality = "text"
    scratch_lr = 5e-2  # embeddings from scratch need a large step (fastText itself uses SGD at 0.1 to 1)

    def __init__(self, tokenizer: Any, *, max_length: int, name: str, dim: int = 64, buckets: int = 1 << 16) -> None:
        super().__init__(name=name, pretrained=False, source=f"bag of n-grams (dim {dim}), random init")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.feature_dim = dim
        self.blocks = nn.ModuleList([_NgramEmbedding(len(tokenizer), dim, buckets)])

    def pool(self, state: State) -> Tensor:
        mask = state["attention_mask"].unsqueeze(-1).to(state["hidden"].dtype)
        return (state["hidden"] * mask).sum(1) / mask.sum(1).clamp(min=1.0)


    def block_names(self) -> list[str]:
        return ["n-gram embeddings"]

    def small_twin(self) -> Backbone:
        return self
