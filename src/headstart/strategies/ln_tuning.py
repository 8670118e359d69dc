"""``ln-tuning``: only the normalisation layers' scale and shift train (LN-Tuning, Qi et al., 2022), through PEFT.

PEFT's LN tuning puts a trainable copy beside every normalisation layer (``ln_tuning_layers``) and
leaves the original frozen, so one body can serve several tunings and the copy is what a saved model
keeps. On a transformer these are the LayerNorms (MiniLM: 13 of them, 9,984 numbers besides the head);
on the conv nets the BatchNorms, whose scale and shift train while their statistics stay the
pretrained ones (MobileNetV2: 52 layers, 34,112 numbers). At step 0 the copies equal the originals,
so the model is the probe it starts from (like every fine-tune, ``finetune.py``). Merging for export
swaps the trained copy in. Its rate, like BitFit's, is larger than a whole-matrix fine-tune's (the
rate sweep in BENCHMARKS.md checks it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ..backbones import Backbone
from .base import register_strategy
from .tuner import ParameterEfficient, peft_targets


@register_strategy
@dataclass
class LNTuning(ParameterEfficient):
    name = "ln-tuning"
    order = 66
    summary = "only the normalisation layers' scale and shift (PEFT's LN tuning; BatchNorm on conv nets)"
    prefix = "ln_tuning_layers"
    default_lr = 1e-3

    def peft_config(self, backbone: Backbone) -> Any:
        from peft import LNTuningConfig

        return LNTuningConfig(target_modules=peft_targets(backbone, "ln-tuning"))

    def inject(self, backbone: Backbone, adapter_name: str = "default", config: Any = None) -> None:
        with warnings.catch_warnings():  # PEFT reads no in/out sizes off a norm layer, which LN tuning never needs
            warnings.filterwarnings("ignore", message="Unsupported layer type")
            super().inject(backbone, adapter_name, config)
