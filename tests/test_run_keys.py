"""Run identity: every committed benchmark row keeps its key, and keys change when behaviour does, and only then.

``tests/data/committed_run_keys.jsonl`` lists every row under ``benchmarks/results/`` whose key today's code
reproduces (the benchmark's dataset fingerprint, strategy, budget, seed and options); rows of older defaults
are historical and were orphaned by the default change they record. No data are loaded and nothing trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from headstart.race.grid import RaceSpec, RunSpec
from headstart.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = [json.loads(line) for line in (ROOT / "tests/data/committed_run_keys.jsonl").open()]
# the peers benchmark's grid (benchmarks/peers.py): its held-out cap and token limit
TEST_LIMIT, MAX_LENGTH = 1000, 64


@pytest.fixture(autouse=True)
def bf16_machine(monkeypatch):
    """The rows were measured where precision='auto' resolves to bf16; keys hold what it resolved to."""
    monkeypatch.setattr(TrainConfig, "resolve_precision",
                        lambda self, device: None if self.precision == "fp32" else torch.bfloat16)


def _key(row: dict, **train_options) -> str:
    spec = RaceSpec(row["data"], "minilm-l6", strategies=[row["strategy"]], budgets=[row["budget"]],
                    seeds=row["seed"] + 1, test_limit=TEST_LIMIT, backbone_options={"max_length": MAX_LENGTH},
                    train_options={**row["options"], **train_options})
    return spec.run_key(RunSpec(spec.strategies[0], row["budget"], row["seed"]), row["fingerprint"], None)


def test_the_fixture_lists_committed_rows():
    committed = {json.loads(line).get("key") for f in (ROOT / "benchmarks/results").glob("*.jsonl")
                 for line in f.open()}
    assert len(FIXTURE) > 200 and {r["key"] for r in FIXTURE} <= committed


@pytest.mark.parametrize("row", FIXTURE, ids=lambda r: f"{r['data']}-{r['strategy']}-{r['budget']}-{r['seed']}-"
                                                       f"{r['key'][:6]}")
def test_every_committed_row_keeps_its_key(row):
    assert _key(row) == row["key"]


def test_a_changed_value_changes_the_key():
    row = next(r for r in FIXTURE if r["strategy"] == "lldr" and r["options"] == {"lldr.decay": 0.9})
    assert _key(row, **{"lldr.decay": 0.7}) != row["key"]
    assert _key(row, lr=3e-4) != row["key"]


def test_a_new_option_at_its_neutral_default_keeps_the_key_and_a_set_one_changes_it():
    row = next(r for r in FIXTURE if r["strategy"] == "full" and r["options"] == {"monitor": "none"})
    assert _key(row, guard=None, guard_weight=None, adapt=None) == row["key"]
    assert _key(row, guard="l2sp") != row["key"]
    assert _key(row, guard="l2sp") != _key(row, guard="l2sp", guard_weight=0.5)


def test_a_moved_class_and_a_release_keep_the_key_a_behaviour_version_changes_it(monkeypatch):
    import headstart
    from headstart.strategies.finetune import Full

    row = next(r for r in FIXTURE if r["strategy"] == "full" and r["options"] == {"monitor": "none"})
    monkeypatch.setattr(headstart, "__version__", "9.9.9")
    monkeypatch.setattr(Full, "__module__", "headstart.strategies.elsewhere")
    assert _key(row) == row["key"]
    monkeypatch.setattr(Full, "behaviour_version", 2)
    assert _key(row) != row["key"]
