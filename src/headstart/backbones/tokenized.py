"""Preprocessing shared by text backbones: a tokenizer, right-padded batches, per-example states."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import HeadstartError
from .base import State

__all__ = ["TokenizedText"]


class TokenizedText:
    """Mixin for a ``Backbone`` with ``tokenizer`` and ``max_length`` attributes."""

    tokenizer: Any
    max_length: int
    name: str

    def preprocess(self, inputs: Sequence[Any]) -> State:
        if isinstance(inputs, str) or not all(isinstance(x, str) for x in inputs):
            bad = inputs if isinstance(inputs, str) else next(x for x in inputs if not isinstance(x, str))
            raise HeadstartError(
                f"{self.name} is a text model but got {type(bad).__name__} input; pass a list of strings."
            )
        enc = self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    @property
    def preprocess_id(self) -> str:
        """The tokenizer by content (its vocabulary's hash), never by where its files happen to be on disk."""
        cached = getattr(self, "_vocab_id", None)
        if cached is None:
            vocab = sorted(self.tokenizer.get_vocab().items())
            cached = hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]
            object.__setattr__(self, "_vocab_id", cached)
        return f"tok={type(self.tokenizer).__name__}:{cached}|vocab={len(self.tokenizer)}|max={self.max_length}"

    def split_state(self, state: State) -> list[State]:
        # Right-padded batches: trim each example to its own length so cached states stay small.
        lengths = state["attention_mask"].sum(1).tolist()
        return [{k: v[i, : int(n)] for k, v in state.items()} for i, n in enumerate(lengths)]

    def merge_states(self, states: Sequence[State]) -> State:
        longest = max(s["attention_mask"].shape[0] for s in states)
        out = {}
        for key in states[0]:
            padded = []
            for s in states:
                t = s[key]
                pad = [0, 0] * (t.dim() - 1) + [0, longest - t.shape[0]]
                padded.append(nn.functional.pad(t, pad))
            out[key] = torch.stack(padded)
        return out
