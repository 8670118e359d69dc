"""headstart: adapt pretrained models to your small labelled dataset, and prove which way is best."""

__version__ = "0.2.0"

from .adapter import Adapter  # noqa: E402
from .backbones import Backbone, create_backbone, list_backbones, register_backbone  # noqa: E402
from .data import Task, load_task, make_splits  # noqa: E402
from .errors import HeadstartError, NotFittedError  # noqa: E402
from .strategies import Strategy, create_strategy, list_strategies, register_strategy  # noqa: E402
from .train import TrainConfig  # noqa: E402

__all__ = ["Adapter", "Backbone", "HeadstartError", "NotFittedError", "Strategy", "Task", "TrainConfig",
           "__version__", "create_backbone", "create_strategy", "list_backbones", "list_strategies", "load_task",
           "make_splits", "register_backbone", "register_strategy"]
