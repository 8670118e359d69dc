"""``headstart backbones NAME``: what a backbone is before any training (usable here, blocks, parameters, pooling,
the strategies that apply), so a user can check an ``hf:`` id or folder in seconds instead of at the first run."""

from __future__ import annotations

from typing import Any

from ..errors import HeadstartError
from .registry import create_backbone

__all__ = ["describe_backbone", "format_backbone"]


def describe_backbone(name: str) -> dict[str, Any]:
    """A dict saying whether ``name`` loads, and if it does, its blocks, parameters, pooling and strategies."""
    try:
        backbone = create_backbone(name)
    except HeadstartError as exc:
        return {"name": name, "usable": False, "why": str(exc)}
    blocks = [{"name": n, "parameters": sum(p.numel() for p in b.parameters())}
              for n, b in zip(backbone.block_names(), backbone.blocks)]
    return {"name": backbone.name, "usable": True, "modality": backbone.modality,
            "family": getattr(backbone, "family", None), "source": backbone.source,
            "parameters": backbone.num_parameters(), "feature_dim": backbone.feature_dim, "blocks": blocks,
            "pooling": backbone.pool_id or None, "preprocess": backbone.preprocess_id,
            "strategies": _strategies(backbone)}


def _strategies(backbone: Any) -> list[str]:
    """Every registered strategy that can run on ``backbone`` (a parameter-efficient one needs target layers)."""
    from ..strategies import STRATEGIES
    from ..strategies.tuner import ParameterEfficient, peft_targets

    out = []
    for name, cls in STRATEGIES.items():
        if issubclass(cls, ParameterEfficient) and not peft_targets(backbone, name, required=False):
            continue
        out.append(f"partial:1..{len(backbone.blocks)}" if name == "partial" else name)
    return out


def format_backbone(d: dict[str, Any]) -> str:
    if not d["usable"]:
        return f"{d['name']}: not usable here. {d['why']}"
    lines = [f"{d['name']}: usable ({d['modality']}" + (f", {d['family']}" if d["family"] else "") + ")",
             f"  source       {d['source']}",
             f"  parameters   {d['parameters']:,} ({d['feature_dim']} features)"]
    if d["pooling"]:
        lines.append(f"  pooling      {d['pooling']}")
    lines.append(f"  preprocess   {d['preprocess']}")
    lines.append(f"  strategies   {', '.join(d['strategies'])}")
    lines.append(f"  blocks       {len(d['blocks'])} (partial:k trains the top k)")
    lines += [f"    {i:>3}  {b['name']:<12} {b['parameters']:>12,}" for i, b in enumerate(d["blocks"])]
    return "\n".join(lines)
