"""headstart: adapt pretrained models to your small labelled dataset, and prove which way is best.

The names below are imported on first use, so ``import headstart.deploy`` (ONNX Runtime prediction)
never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_WHERE = {
    "Adapter": "adapter", "AdapterBank": "bank",
    "Backbone": "backbones", "create_backbone": "backbones", "list_backbones": "backbones",
    "register_backbone": "backbones", "Task": "data", "load_task": "data", "make_splits": "data",
    "HeadstartError": "errors", "NotFittedError": "errors", "Strategy": "strategies",
    "create_strategy": "strategies", "list_strategies": "strategies", "register_strategy": "strategies",
    "TrainConfig": "train",
}

__all__ = ["Adapter", "AdapterBank", "Backbone", "HeadstartError", "NotFittedError", "Strategy", "Task", "TrainConfig",
           "__version__", "create_backbone", "create_strategy", "list_backbones", "list_strategies", "load_task",
           "make_splits", "register_backbone", "register_strategy"]

if TYPE_CHECKING:
    from .adapter import Adapter
    from .backbones import Backbone, create_backbone, list_backbones, register_backbone
    from .bank import AdapterBank
    from .data import Task, load_task, make_splits
    from .errors import HeadstartError, NotFittedError
    from .strategies import Strategy, create_strategy, list_strategies, register_strategy
    from .train import TrainConfig


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'headstart' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
