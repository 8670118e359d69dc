"""The training loop, its configuration, callbacks, feature cache, augmentation and Δθ."""

from .callbacks import Callback, EpochRecord, FitResult, JsonlLogger, ProgressBar, StopReason
from .config import TrainConfig
from .features import FeatureCache
from .loop import BatchSource, EarlyStopping, evaluate, run_training
from .model import AdaptedModel, ParamPlan, build_param_groups, set_train_mode

__all__ = ["AdaptedModel", "BatchSource", "Callback", "EarlyStopping", "EpochRecord", "FeatureCache", "FitResult",
           "JsonlLogger", "ParamPlan", "ProgressBar", "StopReason", "TrainConfig", "build_param_groups", "evaluate",
           "run_training", "set_train_mode"]
