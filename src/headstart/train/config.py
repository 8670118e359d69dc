"""``TrainConfig``: the loop's knobs, validated on construction and saved with every run."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..declare import check_declared, option
from ..errors import HeadstartError

__all__ = ["BATCHNORM", "MONITORS", "PRECISIONS", "TrainConfig"]

PRECISIONS = ("auto", "bf16", "fp32")  # of the training forward pass; see train/precision.py
MONITORS = ("val_acc", "val_loss", "none")  # see TrainConfig.monitor
BATCHNORM = ("frozen", "batch")  # see TrainConfig.batchnorm


@dataclass
class TrainConfig:
    """How to train. ``None`` means "the strategy's default" (each strategy states its own)."""

    epochs: int | None = option(None, "maximum epochs (default: the strategy's, raised so that small data still gets "
                                "min_steps updates; early stopping usually ends sooner)", example=20, low=1)
    min_steps: int | None = option(None, "with epochs unset: plan at least this many optimiser steps (strategy "
                                   "default)", example=100, low=1)
    batch_size: int = option(16, "examples per optimisation step", low=1)
    lr: float | None = option(None, "learning rate of the body's trainable part (strategy default if None)",
                              example=1e-4, low=0.0, low_open=True)
    head_lr: float | None = option(None, "learning rate of the new head (strategy default if None)",
                                   example=1e-3, low=0.0, low_open=True)
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and norm weights)", low=0.0)
    warmup: float = option(0.1, "fraction of the planned steps spent warming the LR up linearly",
                           low=0.0, high=1.0, high_open=True)
    patience: int | None = option(None, "epochs without improvement before stopping (default: 5, or a fifth of the "
                                  "planned epochs when that is more)", example=5, low=1)
    min_epochs: int | None = option(None, "early stopping never fires before this epoch (default: a quarter of the "
                                    "planned epochs)", example=3, low=0)
    monitor: str | None = option(None, "which epoch's weights are kept: 'val_acc' (early stopping on validation "
                                 "accuracy, ties broken by the lower loss, the best epoch restored), 'val_loss' "
                                 "(the reverse), 'none' (every planned epoch, the last weights; validation is still "
                                 "measured and shown); None: the strategy's default ('none' for the fine-tunes, "
                                 "'val_acc' for the from-scratch baselines)", choices=MONITORS)
    batchnorm: str | None = option(None, "BatchNorm layers that train: 'frozen' (inference mode: the pretrained "
                                   "running statistics are kept and the scale and shift still train; the usual "
                                   "advice for fine-tuning on small data, whose batch statistics would undo what the "
                                   "head was fitted to), 'batch' (batch statistics, running averages updated: "
                                   "PyTorch's train mode); None: 'frozen' on a pretrained body, 'batch' from scratch",
                                   choices=BATCHNORM, neutral=None)
    grad_clip: float | None = option(1.0, "clip the gradient norm to this (None: no clipping)", low=0.0, low_open=True)
    seed: int = option(0, "seeds the head init, batch order, dropout and augmentation", low=0)
    augment: bool = option(False, "label-preserving augmentation (bypasses the feature cache)")
    cache_features: bool = option(True, "cache the frozen bottom's output (only without augmentation)")
    eval_batch_size: int = option(64, "examples per forward pass when evaluating or predicting", low=1)
    device: str = option("auto", "'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', ...")
    precision: str = option("auto", "training forward pass: 'auto' (bf16 autocast where the CPU or GPU has native "
                            "bf16, else fp32), 'bf16', 'fp32'", choices=PRECISIONS)

    def __post_init__(self) -> None:
        check_declared(self, "TrainConfig")
        if self.device != "auto":  # the spelling now; whether that device exists is checked when training starts
            import torch

            try:
                torch.device(self.device)
            except RuntimeError:
                raise HeadstartError(f"The 'device' parameter of TrainConfig must be 'auto', 'cpu', 'cuda' or "
                                     f"'cuda:N'. Got {self.device!r} instead (e.g. device='cpu').") from None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        """Split keyword options into this config's fields and the rest (the strategy's)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names}), {
            k: v for k, v in options.items() if k not in names}

    def plan_epochs(self, default_epochs: int, min_steps: int, steps_per_epoch: int) -> int:
        """Epochs to plan: ``epochs`` when set (an explicit setting always wins), else the strategy's default
        raised until the run makes at least ``min_steps`` optimiser steps (8 labels per class is one step an epoch)."""
        if self.epochs is not None:
            return self.epochs
        steps = self.min_steps if self.min_steps is not None else min_steps
        return max(default_epochs, -(-steps // max(1, steps_per_epoch)))

    def stopping(self, epochs: int) -> tuple[int, int]:
        """(patience, min_epochs) for a run of ``epochs`` planned epochs."""
        patience = self.patience if self.patience is not None else max(5, -(-epochs // 5))
        return patience, self.min_epochs if self.min_epochs is not None else epochs // 4

    def resolve_monitor(self, default: str) -> TrainConfig:
        """This config with ``monitor`` set: the explicit setting, else ``default`` (a strategy's)."""
        return self if self.monitor is not None else replace(self, monitor=default)

    def resolve_batchnorm(self, pretrained: bool) -> str:
        """``batchnorm`` as set, else the default for a pretrained body or a from-scratch one."""
        return self.batchnorm or ("frozen" if pretrained else "batch")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve_precision(self, device):
        """The autocast dtype for training on ``device`` (None: fp32)."""
        from .precision import resolve_precision

        return resolve_precision(self.precision, device)

    def resolve_device(self):
        import torch

        if self.device == "auto":
            if not torch.cuda.is_available():
                return torch.device("cpu")
            # a multi-process launch (accelerate launch): each process its own GPU
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise HeadstartError(f"Unknown device {self.device!r}; use 'auto', 'cpu' or 'cuda[:N]'.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise HeadstartError("device='cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'.")
        return device
