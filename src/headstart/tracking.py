"""Experiment tracking through the tools people already use: MLflow and TensorBoard, as optional extras.

``--report-to mlflow,tensorboard`` (``compare``, ``fit``, ``demo``) or ``run_race(..., trackers=...)``:
every run becomes one MLflow run / one TensorBoard run folder holding its configuration (the fully
resolved strategy and training options), its per-epoch curves (training loss, validation loss and
accuracy, the learning rate; step = epochs counted across the run's stages) and its final metrics
(selection and test accuracy in a race, the restored epoch, seconds, trainable parameters).

- MLflow through ``MlflowClient`` (no global active run is touched): the tracking URI is
  ``MLFLOW_TRACKING_URI`` when set, else a file store in the results folder (``mlruns/``); the
  experiment is named after the results folder. ``pip install 'headstart[mlflow]'``.
- TensorBoard through ``torch.utils.tensorboard.SummaryWriter``: event files under
  ``tensorboard/<run>/`` in the results folder (``tensorboard --logdir DIR/tensorboard``).
  ``pip install 'headstart[tensorboard]'``.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import HeadstartError
from .train.callbacks import Callback, EpochRecord, FitResult

__all__ = ["TRACKERS", "MlflowTracker", "TensorBoardTracker", "Tracker", "make_trackers"]

TRACKERS = ("mlflow", "tensorboard")
FINAL = ("sel_acc", "sel_macro_f1", "test_acc", "test_macro_f1", "best_val_acc", "seconds", "trainable_params",
         "best_epoch", "epochs", "predict_ms_per_example", "delta_relative")


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


class _RunCallback(Callback):
    """Forwards every epoch of every stage of one run to its tracker, with a step that keeps counting."""

    def __init__(self, log: Any) -> None:
        self.log, self.step = log, 0

    def on_epoch_end(self, record: EpochRecord) -> None:
        values = {"train_loss": record.train_loss, "val_loss": record.val_loss, "val_acc": record.val_acc,
                  "lr": record.lr if record.train_loss is not None else None}
        self.log({k: v for k, v in values.items() if v is not None}, self.step)
        self.step += 1


def _final(record: dict[str, Any]) -> dict[str, float]:
    """The run's final numbers that a tracker logs (booleans and missing values left out)."""
    return {k: float(record[k]) for k in FINAL
            if isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)}


class Tracker(ABC):
    """One per race (or fit): ``start`` a run (returns the callback to train with), ``finish`` it with its record."""

    @abstractmethod
    def start(self, name: str, params: dict[str, Any]) -> Callback:
        """A new run named ``name`` with its configuration; the callback logs its epochs."""

    @abstractmethod
    def finish(self, record: dict[str, Any]) -> None:
        """The run's final record (metrics, stop reason); closes the run."""

    def close(self) -> None:  # noqa: B027 (optional)
        """After the last run."""


class MlflowTracker(Tracker):
    def __init__(self, folder: Path, experiment: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise HeadstartError("--report-to mlflow needs MLflow: pip install 'headstart[mlflow]'.") from None
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        name = experiment or f"headstart: {Path(folder).resolve().name}"
        found = self.client.get_experiment_by_name(name)
        self.experiment = found.experiment_id if found else self.client.create_experiment(name)
        self.run_id: str | None = None

    def start(self, name: str, params: dict[str, Any]) -> Callback:
        run = self.client.create_run(self.experiment, run_name=name, tags={"headstart.run": name})
        self.run_id = run_id = run.info.run_id
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        for key, value in flat.items():
            self.client.log_param(run_id, key[:250], value[:6000])

        def log(values: dict[str, float], step: int) -> None:
            for key, value in values.items():
                self.client.log_metric(run_id, key, float(value), step=step)
        return _RunCallback(log)

    def finish(self, record: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        for key, value in _final(record).items():
            self.client.log_metric(self.run_id, key, value)
        if record.get("stop_reason"):
            self.client.set_tag(self.run_id, "stop_reason", record["stop_reason"])
        self.client.set_terminated(self.run_id)
        self.run_id = None


class TensorBoardTracker(Tracker):
    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise HeadstartError("--report-to tensorboard needs TensorBoard: pip install 'headstart[tensorboard]'.") \
                from None
        self._writer_cls, self.root, self.writer = SummaryWriter, Path(folder) / "tensorboard", None

    def start(self, name: str, params: dict[str, Any]) -> Callback:
        self.writer = writer = self._writer_cls(str(self.root / re.sub(r"[^\w.@:-]+", "_", name)))
        writer.add_text("config", "```\n" + json.dumps(params, indent=2, default=str) + "\n```")

        def log(values: dict[str, float], step: int) -> None:
            for key, value in values.items():
                writer.add_scalar(f"epoch/{key}", value, step)
        return _RunCallback(log)

    def finish(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in _final(record).items():
            self.writer.add_scalar(f"final/{key}", value, 0)
        self.writer.close()
        self.writer = None


def make_trackers(names: Sequence[str] | str | None, folder: str | Path) -> list[Tracker]:
    """``"mlflow,tensorboard"`` (or a list) to trackers writing beside ``folder``; unknown names are refused."""
    if not names:
        return []
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in wanted if n not in TRACKERS]
    if unknown:
        raise HeadstartError(f"--report-to {unknown[0]!r} is not supported; use {' and/or '.join(TRACKERS)}.")
    made = {"mlflow": MlflowTracker, "tensorboard": TensorBoardTracker}
    return [made[n](Path(folder)) for n in dict.fromkeys(wanted)]


def fit_record(result: FitResult) -> dict[str, Any]:
    """The final metrics of a single fit (outside a race)."""
    return {"best_val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "seconds": result.seconds,
            "trainable_params": result.trainable_params, "stop_reason": result.stop_reason.value,
            "epochs": len([r for r in result.records if r.epoch > 0])}
