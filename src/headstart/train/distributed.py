"""Data-parallel training across processes with Hugging Face Accelerate (DDP), for one large fine-tune.

Launch any headstart entry point with ``accelerate launch --multi_gpu --num_processes N ...`` (torchrun): every
process runs the same fit, with the same seed; each optimiser step's batch (the global batch,
``batch_size``) is split across the processes, their gradients are averaged by DDP, and every process
applies the same update, so N processes follow one process's run at the same global batch. Accelerate
starts the processes and the process group (gloo on CPUs, NCCL on GPUs) and wraps the model; frozen
parameters never require a gradient, so DDP needs no ``find_unused_parameters`` pass. Validation,
early stopping and the restored weights are the same on every process; only the main process writes
files (saved models, results).

Without a multi-process launch (the usual case) none of this is active and Accelerate is not imported.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["DataParallel", "data_parallel", "is_main_process"]


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """True except in the non-main processes of a multi-process launch."""
    return int(os.environ.get("RANK", "0")) == 0


class DataParallel:
    """This process's part of a data-parallel fit."""

    def __init__(self) -> None:
        from accelerate import Accelerator

        self.accelerator = Accelerator()
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def wrap(self, model: torch.nn.Module) -> Any:
        """The model as DDP sees it (the forward pass to train through); the module itself is unchanged."""
        return self.accelerator.prepare_model(model)

    def shard(self, index: list[int]) -> list[int]:
        """This process's share of one global batch (every process draws the same batches: same seed)."""
        return index[self.rank::self.world]

    def scale(self, n_local: int, n_global: int) -> float:
        """Loss weight so that DDP's gradient average is the gradient of the global batch's mean loss,
        also when the last batch does not split evenly."""
        return n_local * self.world / max(1, n_global)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(value, reduction="sum")


def data_parallel() -> DataParallel | None:
    """The data-parallel context of a multi-process launch, or None in a single process."""
    if not _launched():
        return None
    try:
        return DataParallel()
    except ImportError:
        from ..errors import HeadstartError

        raise HeadstartError("A multi-process launch needs Accelerate: pip install 'headstart[distributed]'.") from None
