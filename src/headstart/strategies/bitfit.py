"""``bitfit``: only the body's bias terms train (BitFit, Ben Zaken et al., ACL 2022), and the head.

Every bias of every block (attention and feed-forward projections, LayerNorm shifts; on the conv
nets, BatchNorm's shifts, their statistics kept frozen) trains; nothing is injected, so the model
needs no PEFT layer to load or export. On MiniLM that is 25,728 numbers besides the head (0.11% of the
body), on MobileNetV2 17,056 (0.77%). A body with no bias terms (ModernBERT) is refused in one sentence.
A saved model keeps only the biases and the head. Biases start where pretraining left them, so at
step 0 the model is the probe it starts from (like every fine-tune, ``finetune.py``); they need a
larger rate than whole matrices do: the paper's 1e-3 for BERT, which the rate sweep in BENCHMARKS.md
checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import register_strategy
from .tuner import NamedTensors


@register_strategy
@dataclass
class BitFit(NamedTensors):
    name = "bitfit"
    order = 67
    summary = "only the body's bias terms train (BitFit), from the probe's head"
    prefix = "bias"
    what = "bias terms"
    default_lr = 1e-3
