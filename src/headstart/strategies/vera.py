"""``vera``: vector-based random-matrix adaptation (VeRA, Kopiczko et al., ICLR 2024) through PEFT's VeRA tuner.

VeRA keeps one pair of frozen random low-rank matrices for the whole model, shared by every adapted
layer, and trains only two scaling vectors per layer (``vera_lambda_d``, ``vera_lambda_b``): an order
of magnitude fewer numbers than LoRA at the same targets (``lora``'s Linear layers of a text encoder;
PEFT's VeRA adapts Linear layers only, so image backbones are refused). ``vera_lambda_b`` starts at zero, so at
step 0 the model is the probe it starts from. PEFT's ``inject_adapter_in_model`` refuses VeRA (its
projections are state shared across layers), so the tuner class itself adapts the backbone; the
projections come from a fixed seed (``projection_prng_key``) and are saved with the vectors all the
same, so a saved model never depends on how a random generator behaves in another version. Merging
for export folds each layer's update into its weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..backbones import Backbone
from ..declare import option
from ..errors import HeadstartError
from .base import register_strategy
from .tuner import ParameterEfficient, peft_targets


@register_strategy
@dataclass
class VeRA(ParameterEfficient):
    name = "vera"
    order = 62
    summary = "shared frozen random projections, a trained scaling vector pair per layer (PEFT's VeRA)"
    prefix = "vera_"
    default_lr = 3e-2  # the rate sweep's best mean selection accuracy: 0.693, 0.654 at 4e-3
    modalities = ("text",)
    rank: int = option(256, "rank of the shared random projections", low=1)

    def peft_config(self, backbone: Backbone) -> Any:
        from peft import VeraConfig

        linear = [t for t in peft_targets(backbone, "lora") if isinstance(backbone.get_submodule(t), nn.Linear)]
        if not linear:
            raise HeadstartError(f"{backbone.name} has no Linear layers for vera to adapt (its targets are "
                                 "convolutions); use lora, ia3, ln-tuning or bitfit on it.")
        return VeraConfig(r=self.rank, target_modules=linear, save_projection=True, vera_dropout=0.0)

    def inject(self, backbone: Backbone, adapter_name: str = "default", config: Any = None) -> None:
        from peft.tuners.vera import VeraModel

        VeraModel(backbone, self.peft_config(backbone) if config is None else config, adapter_name)
