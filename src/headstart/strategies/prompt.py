"""``prompt``: prompt tuning (Lester et al., EMNLP 2021): a learned soft prompt, the whole body frozen.

``tokens`` virtual tokens (PEFT's ``PromptEmbedding``) are put into the sequence right after the
first token, once the embeddings block has run: every layer attends to them, the pooling skips them
(``pool_mask``), so the sentence embedding is still the mean over the real tokens. PEFT's own route
prepends them to ``inputs_embeds`` inside the model's ``forward``, which headstart never calls (it
runs the embeddings and each layer itself, block by block), so the prompt lives beside block 0 and a
forward hook inserts it. They start as the embeddings block's output for tokens sampled from the
vocabulary (PEFT's ``SAMPLE_VOCAB``, taken after the embeddings' LayerNorm so that they have the scale
of the states they join); the probe's head is fitted on the prompted features, so the fine-tune's
epoch 0 is that probe.

It trains ``tokens × hidden`` numbers (20 × 384 = 7,680 on MiniLM) but every step runs the whole body
forward and backward: the frozen-prefix feature cache cannot help, since the prompt changes the input
of block 1 onwards. It needs a far larger rate than the weight-space methods (Lester et al. train at
0.3 with Adafactor; PEFT's examples use 1e-2 to 3e-2 with AdamW). Text encoders only: a conv net has
no token sequence, so it is refused in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..declare import option
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import register_strategy
from .tuner import NamedTensors, hook_once

PROMPT = "soft_prompt"


def _insert(block: torch.nn.Module, args: Any, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Forward hook of block 0: the virtual tokens after the first token; the pooling mask leaves them out (no change
    without a prompt: a bank's other member is active)."""
    prompt = getattr(block, PROMPT, None)
    if prompt is None:
        return None
    hidden, mask = state["hidden"], state["attention_mask"]
    n = prompt.embedding.num_embeddings
    virtual = prompt(torch.arange(n, device=hidden.device)).to(hidden.dtype).expand(hidden.shape[0], n, -1)
    ones = mask.new_ones(mask.shape[0], n)
    return {**state, "hidden": torch.cat([hidden[:, :1], virtual, hidden[:, 1:]], dim=1),
            "attention_mask": torch.cat([mask[:, :1], ones, mask[:, 1:]], dim=1),
            "pool_mask": torch.cat([mask[:, :1], torch.zeros_like(ones), mask[:, 1:]], dim=1)}


@register_strategy
@dataclass
class PromptTuning(NamedTensors):
    name = "prompt"
    order = 69
    summary = "a learned soft prompt of virtual tokens (prompt tuning, PEFT's PromptEmbedding), the body frozen"
    prefix = PROMPT
    adds = PROMPT
    default_lr = 1e-2
    modalities = ("text",)
    tokens: int = option(20, "virtual tokens in the soft prompt", low=1)

    def configure(self, model: AdaptedModel) -> None:
        from peft import PromptEmbedding, PromptTuningConfig

        backbone = model.backbone
        if not hasattr(backbone, "tokenizer"):
            raise HeadstartError(f"prompt tuning adds virtual tokens to a transformer's token sequence; "
                                 f"{backbone.name} has none: use lora, ia3, ln-tuning or bitfit on it.")
        first = backbone.blocks[0]
        if hasattr(first, PROMPT):
            return  # configured already (a second fit on the same model, or loading)
        dim = backbone.feature_dim
        config = PromptTuningConfig(num_virtual_tokens=self.tokens, token_dim=dim, num_transformer_submodules=1,
                                    prompt_tuning_init="RANDOM", task_type="FEATURE_EXTRACTION")
        prompt = PromptEmbedding(config, None)
        training = first.training
        first.eval()  # no dropout on the starting values
        with torch.no_grad():  # sampled vocabulary, as the embeddings block outputs it
            vocab = len(backbone.tokenizer)
            device = next(first.parameters()).device
            ids = torch.randint(0, vocab, (1, self.tokens)).to(device)
            start = first({"input_ids": ids, "attention_mask": torch.ones_like(ids)})["hidden"][0]
            prompt.embedding.weight.copy_(start.float())
        first.train(training)
        first.add_module(PROMPT, prompt.to(next(first.parameters()).device))
        hook_once(first, _insert)

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({0: 1.0}, only=self.prefix)  # the prompt sits beside block 0; nothing else trains
