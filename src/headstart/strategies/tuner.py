"""The parameter-efficient base: what every PEFT method shares, so a new one is one small file.

A method declares its ``prefix`` (the name its tensors carry inside PEFT's layers, ``lora_``, ``ia3_``)
and builds its PEFT config from the target modules; this base owns the rest:

- **targets**: ``TARGETS[family][method]``, one table per backbone family (``Backbone.peft_family``:
  ``bert`` for BERT, RoBERTa, XLM-R, CamemBERT and ELECTRA, a row each for DistilBERT, MPNet, DeBERTa-v2
  and ModernBERT (``backbones/hf_families.py`` names it), ``conv`` for the packaged conv nets,
  ``vit``, ``convnext`` and ``resnet`` for the hub's image families (``backbones/hf_vision_families.py``); a new
  family adds a row; ``EVERY_FAMILY[method]`` is one rule for all of them (LN tuning's norm layers). A backbone
  with no row (the small from-scratch nets) is refused in one sentence;
- **injection** through PEFT's ``inject_adapter_in_model`` into the backbone's own layers (once: a model
  that already carries the method's tensors is left as it is, e.g. when loading);
- **what trains and is saved**: every block, only the tensors under ``prefix``, and the head (``NamedTensors``,
  which a method that trains a subset of the body's own tensors, BitFit's biases, uses without PEFT);
- **merging for export** and **Δθ** are generic over PEFT's tuner layers (``export.merge_adapters``,
  ``train/delta.py``), so they need nothing from the method.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ..backbones import Backbone
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .finetune import FineTune

__all__ = ["TARGETS", "NamedTensors", "ParameterEfficient", "hook_once", "peft_targets"]


def _modules(kind: type[nn.Module], suffixes: tuple[str, ...], skip: str | None = None) -> Callable[[Backbone], list]:
    def find(backbone: Backbone) -> list[str]:
        return [n for n, m in backbone.named_modules() if isinstance(m, kind) and n.endswith(suffixes)
                and (skip is None or skip not in n)]
    return find


def _pointwise(backbone: Backbone) -> list[str]:
    """Pointwise (1×1, ungrouped) convolutions: where most of the weights of these nets sit."""
    return [n for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
            and m.groups == 1]


#: family -> method -> module names (relative to the backbone); ``METHOD.feedforward``: the subset a method
#: treats as feed-forward (IA3 scales their input rather than their output)
TARGETS: dict[str, dict[str, Callable[[Backbone], list[str]]]] = {
    "bert": {
        # attention projections, the attention output and both feed-forward layers of every layer (not the pooler)
        "lora": _modules(nn.Linear, (".query", ".key", ".value", "intermediate.dense", "output.dense")),
        # the IA3 paper's three vectors: keys, values and the feed-forward's inner activation (its output layer's input)
        "ia3": _modules(nn.Linear, (".key", ".value", "output.dense"), skip="attention.output"),
        "ia3.feedforward": _modules(nn.Linear, ("output.dense",), skip="attention"),
    },
    # the same layers under each family's own names (PEFT's per-model table, widened as the bert row is)
    "distilbert": {
        "lora": _modules(nn.Linear, ("_lin", "ffn.lin1", "ffn.lin2")),
        "ia3": _modules(nn.Linear, ("k_lin", "v_lin", "ffn.lin2")),
        "ia3.feedforward": _modules(nn.Linear, ("ffn.lin2",)),
    },
    "mpnet": {
        "lora": _modules(nn.Linear, ("attn.q", "attn.k", "attn.v", "attn.o", "intermediate.dense", "output.dense")),
        "ia3": _modules(nn.Linear, ("attn.k", "attn.v", "output.dense")),
        "ia3.feedforward": _modules(nn.Linear, ("output.dense",)),
    },
    "deberta-v2": {
        "lora": _modules(nn.Linear, ("query_proj", "key_proj", "value_proj", "intermediate.dense", "output.dense")),
        "ia3": _modules(nn.Linear, ("key_proj", "value_proj", "output.dense"), skip="attention.output"),
        "ia3.feedforward": _modules(nn.Linear, ("output.dense",), skip="attention"),
    },
    # fused query-key-value and gated feed-forward: IA3 scales the fused projection's output and Wo's input
    "modernbert": {
        "lora": _modules(nn.Linear, ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo")),
        "ia3": _modules(nn.Linear, ("attn.Wqkv", "mlp.Wo")),
        "ia3.feedforward": _modules(nn.Linear, ("mlp.Wo",)),
    },
    "conv": {"lora": _pointwise, "ia3": _pointwise, "ia3.feedforward": lambda backbone: []},
    # image transformers (ViT, DeiT, DINOv2, Swin: o_proj; CLIP: out_proj); DINOv2-giant's SwiGLU feed-forward
    # is weights_in/weights_out. Swin's patch merging (downsample.reduction) is left as it is
    "vit": {
        "lora": _modules(nn.Linear, ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "mlp.fc1", "mlp.fc2",
                                     "mlp.weights_in", "mlp.weights_out")),
        "ia3": _modules(nn.Linear, ("k_proj", "v_proj", "mlp.fc2", "mlp.weights_out")),
        "ia3.feedforward": _modules(nn.Linear, ("mlp.fc2", "mlp.weights_out")),
    },
    # ConvNeXt's pointwise convolutions are Linear layers; ResNet's are 1x1 (bottleneck) or 3x3 (basic) convs
    "convnext": {
        "lora": _modules(nn.Linear, ("pwconv1", "pwconv2")),
        "ia3": _modules(nn.Linear, ("pwconv1", "pwconv2")),
        "ia3.feedforward": _modules(nn.Linear, ("pwconv2",)),
    },
    "resnet": {"lora": _modules(nn.Conv2d, ("convolution",), skip="stem"),
               "ia3": _modules(nn.Conv2d, ("convolution",), skip="stem"), "ia3.feedforward": lambda backbone: []},
}


def _norms(backbone: Backbone) -> list[str]:
    """Every normalisation layer: LayerNorm in a transformer, BatchNorm in a conv net."""
    return [n for n, m in backbone.named_modules() if isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm))]


#: method -> module names, the same rule in every family of ``TARGETS`` (a family's own row goes over it)
EVERY_FAMILY: dict[str, Callable[[Backbone], list[str]]] = {"ln-tuning": _norms}


def _rules(family: str | None) -> dict[str, Callable[[Backbone], list[str]]]:
    return {**EVERY_FAMILY, **TARGETS[family]} if family in TARGETS else {}


def peft_targets(backbone: Backbone, method: str, *, required: bool = True) -> list[str]:
    """The module names ``method`` adapts on ``backbone``; one sentence when the table has none (``required``)."""
    rules = _rules(backbone.peft_family)
    targets = rules[method](backbone) if method in rules else []
    if not targets and required:
        families = ", ".join(f for f in TARGETS if method in _rules(f))
        raise HeadstartError(f"{backbone.name} names no layers for {method} to adapt; use a backbone of a family "
                             f"with {method} targets ({families}).")
    return targets


def hook_once(block: nn.Module, hook: Callable[..., Any]) -> None:
    """Register ``hook`` as a forward hook of ``block`` unless it is already: a method that adds a module to a block
    (``Strategy.adds``) may configure the same body again once a bank detached an earlier member's modules, and
    its hook must still run once per forward pass. Such a hook returns None (the block's output unchanged) where
    the block lacks the module."""
    hooked = block.__dict__.setdefault("_headstart_hooks", set())
    if hook.__qualname__ not in hooked:
        block.register_forward_hook(hook)
        hooked.add(hook.__qualname__)


@dataclass
class NamedTensors(FineTune):
    """Base of the methods that train only the body's tensors whose name contains ``prefix`` (BitFit's biases), and
    the head: what trains is what is saved, and a body without such tensors is refused in one sentence."""

    prefix: ClassVar[str] = ""
    trains = "named"
    #: what the tensors under ``prefix`` are, for the refusal ("bias terms")
    what: ClassVar[str] = "tensors"

    def configure(self, model: AdaptedModel) -> None:
        if not any(self.prefix in n for n, _ in model.backbone.blocks.named_parameters()):
            raise HeadstartError(f"{model.backbone.name} has no {self.what} for {self.name} to train; pick another "
                                 "method (`headstart options` lists them) or another backbone.")

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)}, only=self.prefix)

    def save_filter(self, key: str) -> bool:
        return self.prefix in key


@dataclass
class ParameterEfficient(NamedTensors):
    """Base of the PEFT methods: a frozen body with small injected tensors (under ``prefix``), and the head."""

    trains = "injected"

    @abstractmethod
    def peft_config(self, backbone: Backbone) -> Any:
        """The PEFT config that ``inject_adapter_in_model`` applies (``peft_targets(backbone, self.name)``)."""

    def configure(self, model: AdaptedModel) -> None:
        if any(self.prefix in n for n, _ in model.backbone.named_parameters()):
            return  # already injected (a second fit on the same model: warm_start)
        self.inject(model.backbone)

    def inject(self, backbone: Backbone, adapter_name: str = "default", config: Any = None) -> None:
        """Add this method's tensors under ``adapter_name`` (a body that serves several adapters has one name each;
        ``config``: its ``peft_config``, built before the first injection wrapped the target layers)."""
        from peft import inject_adapter_in_model

        config = self.peft_config(backbone) if config is None else config
        inject_adapter_in_model(config, backbone, adapter_name=adapter_name)
