"""--report-to: every race run logged to a local MLflow file store and to TensorBoard event files."""

from __future__ import annotations

import pytest

from headstart.errors import HeadstartError
from headstart.race import run_race
from headstart.tracking import make_trackers

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task


def test_every_race_run_is_logged_to_mlflow_and_tensorboard(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = toy_spec(budgets=(4,), seeds=1, strategies=("probe", "lora"))
    records = run_race(spec, tmp_path, task=toy_task(), backbone=lambda p: tiny_backbone("minilm-l6", p),
                       progress=False, trackers=make_trackers("mlflow,tensorboard", tmp_path))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"headstart: {tmp_path.name}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"probe @ 4/class, seed 0", "lora @ 4/class, seed 0"}
    by_strategy = {r["strategy"]: r for r in records}
    for name, run in runs.items():
        record = by_strategy[name.split(" @")[0]]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test_acc"] == pytest.approx(record["test_acc"])
        assert run.data.metrics["sel_acc"] == pytest.approx(record["sel_acc"])
        assert run.data.params["run.strategy"] == name.split(" @")[0] and "train.lr" in run.data.params
    lora_curve = client.get_metric_history(runs["lora @ 4/class, seed 0"].info.run_id, "val_acc")
    assert [m.step for m in lora_curve] == list(range(len(by_strategy["lora"]["curve"])))  # epoch 0 included
    events = EventAccumulator(str(next((tmp_path / "tensorboard").glob("lora*")))).Reload()
    assert len(events.Scalars("epoch/val_acc")) == len(by_strategy["lora"]["curve"])
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(by_strategy["lora"]["test_acc"])


def test_an_unknown_tracker_is_one_sentence(tmp_path):
    with pytest.raises(HeadstartError, match=r"--report-to 'wandb' is not supported; use mlflow and/or tensorboard"):
        make_trackers("mlflow,wandb", tmp_path)
