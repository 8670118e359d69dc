"""What a run reports, and the callbacks that receive it (progress bar, JSON-lines log, dashboard)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["Callback", "EpochRecord", "FitResult", "JsonlLogger", "ProgressBar", "StopReason"]


class StopReason(str, Enum):
    MAX_EPOCHS = "max_epochs"  # ran every planned epoch
    EARLY_STOPPED = "early_stopped"  # patience ran out on the monitored metric
    NON_FINITE_LOSS = "non_finite_loss"  # the loss became NaN or infinite; best weights kept
    SOLVED = "solved"  # a closed-form solver (the L-BFGS probe) fitted the head
    INTERRUPTED = "interrupted"  # a callback asked to stop
    SCHEDULE = "schedule"  # monitor='none': every planned epoch by design, the last weights kept


@dataclass
class EpochRecord:
    stage: str
    epoch: int
    train_loss: float | None  # None for epoch 0, the starting weights scored before any step
    val_loss: float | None  # None for a stage that does not validate (contrastive pairs)
    val_acc: float | None
    seconds: float
    lr: float
    trainable_params: int
    #: with terms: the epoch's mean of each part of the loss (``data`` and every term, weighted); else empty
    terms: dict[str, float] = field(default_factory=dict)
    #: early stopping's state after this epoch (None for a stage that does not validate)
    best_epoch: int | None = None
    wait: int | None = None


@dataclass
class FitResult:
    """Everything a run learned about itself: curves, the best epoch, why it stopped, how far it moved."""

    strategy: str
    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_acc: float | None = None
    stop_reason: StopReason = StopReason.MAX_EPOCHS
    seconds: float = 0.0
    trainable_params: int = 0
    delta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the frozen boundary: blocks ``[0, boundary)`` never trained, so their output can be cached (``features_start``,
    #: ``n_blocks + 1``: only the head trained); the one name for this idea (``partial:k`` sets it to ``n_blocks - k``)
    boundary: int = 0
    #: per stage: its learning rates as used (body, head, every parameter group's) and planned epochs
    stages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop_reason"] = self.stop_reason.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        """The inverse of ``to_dict`` (a saved model's record of its training)."""
        known = {f for f in cls.__dataclass_fields__}
        if "frozen_until" in d and "boundary" not in d:  # the boundary's name in models saved before it had one
            d = {**d, "boundary": d["frozen_until"]}
        d = {k: v for k, v in d.items() if k in known}
        records = [EpochRecord(**r) for r in d.pop("records", [])]
        return cls(**{**d, "records": records, "stop_reason": StopReason(d.get("stop_reason", "max_epochs"))})


class Callback:
    """Typed no-op hooks; override what you need.

    The loop sets ``model`` (the model being trained) before ``on_fit_start``; setting
    ``stop_requested`` stops the loop after the current epoch (the reason is recorded).
    """

    stop_requested: bool = False
    model: Any = None

    def on_fit_start(self, info: dict[str, Any]) -> None:  # noqa: B027 (intentionally empty hook)
        """``info``: strategy, stage, planned epochs, steps per epoch, trainable parameters."""

    def on_step_end(self, step: int, loss: Any) -> None:  # noqa: B027
        """After each optimiser step: its index within the epoch and the step's loss (a tensor: reading it syncs)."""

    def on_before_optimizer_step(self, optimizer: Any) -> None:  # noqa: B027
        """After backward and clipping, before ``optimizer.step()`` (gradients are in place)."""

    def on_epoch_end(self, record: EpochRecord) -> None:  # noqa: B027
        """Called after each epoch (the record holds the early-stopping state after it)."""

    def on_fit_end(self, result: FitResult) -> None:  # noqa: B027
        """Called once per stage with the (partial) result."""

    def on_run_end(self, record: dict[str, Any]) -> None:  # noqa: B027
        """A race run is finished and scored, and about to be stored (``record`` is what will be stored); raising
        here keeps it out of the store (the lab's cancel)."""

    def on_solved(self, info: dict[str, Any]) -> None:  # noqa: B027
        """A closed-form stage (the probe) was solved: ``info`` has its ``stage``, held-out ``val_acc`` and
        ``val_loss`` (None when nothing could be held out) and the ``seconds`` it took."""

    def on_phase(self, phase: str, detail: str = "") -> None:  # noqa: B027
        """What a run is doing between epochs, in words (``training``: the fit starts; ``extracting features``,
        ``scoring``, ``measuring what it kept``), so a live view never just says "starting"."""


class ProgressBar(Callback):
    """A tqdm bar over epochs, with the latest losses and accuracy."""

    def __init__(self, desc: str = "") -> None:
        self.desc = desc
        self._bar: Any = None

    def on_fit_start(self, info: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=info["epochs"], desc=self.desc or f"{info['strategy']}", unit="epoch", leave=False)

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self._bar is not None:
            shown = {"train_loss": record.train_loss, "val_loss": record.val_loss, "val_acc": record.val_acc}
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items() if v is not None})
            self._bar.update(1)

    def on_fit_end(self, result: FitResult) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class JsonlLogger(Callback):
    """Appends one JSON object per event to a file: ``fit_start``, ``epoch``, ``fit_end``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, event: str, payload: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "time": time.time(), **payload}) + "\n")

    def on_fit_start(self, info: dict[str, Any]) -> None:
        self._write("fit_start", info)

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._write("epoch", asdict(record))

    def on_fit_end(self, result: FitResult) -> None:
        self._write("fit_end", {k: v for k, v in result.to_dict().items() if k != "records"})
