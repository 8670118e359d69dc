"""Loss terms and the fit context: every registered term on tiny models, the l2sp guard, extra sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.errors import HeadstartError
from headstart.strategies import create_strategy
from headstart.terms import create_term, list_terms
from headstart.train import TrainConfig
from headstart.train.context import FitContext
from headstart.train.loop import BatchSource

from .conftest import REGISTERED, tiny_backbone


def TEXT(pretrained: bool = True):
    return tiny_backbone("minilm-l6", pretrained)


def _task_for(backbone: str, text_task):
    if tiny_backbone(backbone).modality == "text":
        return text_task
    rng = np.random.default_rng(0)  # bright vs dark images
    images = [np.clip(rng.normal(60 if i % 2 else 190, 30, (24, 24, 3)), 0, 255).astype(np.uint8) for i in range(16)]
    from headstart.data import Task

    return Task(images, np.array([i % 2 for i in range(16)]), ("bright", "dark"), "image")


@pytest.mark.parametrize("backbone", REGISTERED)
@pytest.mark.parametrize("name", list_terms())
def test_every_term_is_reachable_from_a_fine_tune_and_records_its_value(text_task, name, backbone):
    """A term is tested by being registered: a fine-tune takes it, trains with it on every backbone kind, and
    records its value."""
    term = create_term(name)
    option = "guard" if term.kind == "guard" else "adapt"
    task = _task_for(backbone, text_task)
    sources = {"target": task} if term.source == "target" else {}
    clf = Adapter(lambda pretrained: tiny_backbone(backbone, pretrained), "partial:1", feature_cache=None, epochs=2,
                  lr=1e-3, **{option: name})
    clf.fit(task, val=task, **sources)
    record = clf.result_.records[-1]
    assert set(record.terms) == {"data", name} and all(np.isfinite(v) for v in record.terms.values())
    assert record.train_loss == pytest.approx(sum(record.terms.values()), rel=1e-5)
    assert f"{name} × " in clf.result_.stages[-1]["objective"]


def test_l2sp_keeps_the_body_closer_to_where_it_started(text_task):
    def moved(**options):
        clf = Adapter(TEXT, "full", feature_cache=None, epochs=3, lr=1e-3, **options).fit(text_task, val=text_task)
        return clf.result_.delta["l2"]

    free, guarded = moved(), moved(guard="l2sp", guard_weight=10.0)
    assert 0 < guarded < 0.5 * free


def test_a_guard_weight_without_a_guard_and_an_unknown_guard_are_one_sentence():
    with pytest.raises(HeadstartError, match=r"^lldr: guard_weight is set but guard is not"):
        create_strategy("lldr", guard_weight=1.0)
    with pytest.raises(HeadstartError,
                       match=r"^The 'guard' parameter of partial must be one of 'ewc', 'l2sp', 'lwf' or None"):
        create_strategy("partial:2", guard="nope")
    with pytest.raises(HeadstartError, match=r"^The 'weight' parameter of l2sp must be positive or None. Got -1"):
        create_term("l2sp", weight=-1)


def test_the_fit_context_draws_an_extra_source_without_moving_the_training_order():
    labels = np.zeros(5, dtype=np.int64)
    src = BatchSource(list(range(5)), labels, lambda items: {"x": torch.tensor(items)})
    ctx = FitContext(None, TrainConfig(seed=3), torch.device("cpu"), 0, src, None, "full", sources={"target": src})
    drawn = [ctx.draw("target", 2)["x"].tolist() for _ in range(5)]
    flat = sum(drawn, [])
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4] and sorted(flat[5:10]) == [0, 1, 2, 3, 4]  # every item once a pass
    again = FitContext(None, TrainConfig(seed=3), torch.device("cpu"), 0, src, None, "full", sources={"target": src})
    assert [again.draw("target", 2)["x"].tolist() for _ in range(5)] == drawn  # seeded
    with pytest.raises(HeadstartError, match="full needs the 'replay' examples, which this fit was not given"):
        ctx.draw("replay", 2)
    a, b = (torch.rand(3, generator=c.generator("dann")) for c in (ctx, again))
    assert torch.equal(a, b) and not torch.equal(a, torch.rand(3, generator=ctx.generator("ewc")))


def test_a_race_with_a_target_file_runs_coral_beside_its_source_only_baseline(tmp_path):
    """coral trains on the target examples; full's key does not depend on them, coral's does."""
    from headstart.race import RaceSpec, prepare_race, run_race

    from .race_child import toy_task

    target = tmp_path / "target.csv"
    target.write_text("text\n" + "".join(f"a fine film {i}\nan awful plot {i}\n" for i in range(20)))
    task = toy_task()

    def spec(target_file):
        return RaceSpec("toy", "minilm-l6", strategies=["full", "coral"], budgets=[8], seeds=1, target=target_file,
                        train_options={"epochs": 2, "precision": "fp32"})

    records = run_race(spec(str(target)), tmp_path / "race", task=task,
                       backbone=lambda p: tiny_backbone("minilm-l6", p), progress=False)
    by = {r["strategy"]: r for r in records}
    assert set(by) == {"full", "coral"}
    assert "coral" in by["coral"]["curve"][-1]["terms"] and "terms" not in by["full"]["curve"][-1]
    data = prepare_race(spec(str(target)), task)
    other = tmp_path / "other.csv"
    other.write_text("text\n" + "".join(f"something else {i}\n" for i in range(10)))
    data2 = prepare_race(spec(str(other)), task)
    run_full, run_coral = spec(str(target)).runs()
    keys = [spec(str(t)).run_key(r, d.fingerprint, None, d.target_fingerprint)
            for d, t in ((data, target), (data2, other)) for r in (run_full, run_coral)]
    alone = RaceSpec("toy", "minilm-l6", strategies=["full"], budgets=[8], seeds=1,
                     train_options={"epochs": 2, "precision": "fp32"}).run_key(run_full, data.fingerprint)
    assert keys[0] == keys[2] == alone and keys[1] != keys[3]  # full: no target in its key; coral: its target's


def test_coral_without_target_examples_is_one_sentence():
    from headstart.race import RaceSpec

    with pytest.raises(HeadstartError, match=r"^coral trains on unlabelled examples of the deployment domain; give "
                                             r"them with --target FILE"):
        RaceSpec("toy", "minilm-l6", strategies=["full", "coral"], budgets=[8])
    with pytest.raises(HeadstartError, match=r"coral trains on unlabelled 'target' examples; give them"):
        Adapter(TEXT, "coral", epochs=1).fit([f"good {i}" if i % 2 else f"bad {i}" for i in range(8)], [0, 1] * 4)


def test_one_race_holds_variants_of_one_strategy_each_with_its_own_options_and_key(tmp_path):
    """LP-FT (full) against plain fine-tuning (full[head_init=random]) and against full with a guard."""
    from headstart.race import RaceSpec, run_race
    from headstart.strategies import split_entries

    from .race_child import toy_task

    entries = split_entries("full,full[head_init=random],full[guard=l2sp,guard_weight=0.5]")
    assert entries == ["full", "full[head_init=random]", "full[guard=l2sp,guard_weight=0.5]"]
    spec = RaceSpec("toy", "minilm-l6", strategies=entries, budgets=[8], seeds=1,
                    train_options={"epochs": 2, "precision": "fp32", "full.lr": 1e-3})
    records = run_race(spec, tmp_path, task=toy_task(), backbone=lambda p: tiny_backbone("minilm-l6", p),
                       progress=False)
    by = {r["strategy"]: r for r in records}
    assert set(by) == set(entries) and len({r["key"] for r in records}) == 3
    assert [s["stage"] for s in by["full[head_init=random]"]["stages"]] == ["full"]  # no probe stage: a random head
    assert "l2sp" in by["full[guard=l2sp,guard_weight=0.5]"]["curve"][-1]["terms"]
    assert all(r["stages"][-1]["lr"] == 1e-3 for r in records)  # full.lr reaches every variant of full
    from headstart.report import write_report

    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "full[guard=l2sp,guard_weight=0.5]" in page and "loss at the last epoch: data " in page
    with pytest.raises(HeadstartError, match=r"'full\[head_init=probe\]' repeats an earlier entry"):
        RaceSpec("toy", "minilm-l6", strategies=["full", "full[head_init=probe]"], budgets=[8])


def test_terms_are_refused_under_multi_process_training_with_one_sentence(text_task, monkeypatch):
    import headstart.train.loop as loop

    class _FakeParallel:  # what headstart.train.distributed hands the loop under `accelerate launch`
        def wrap(self, model):
            return model

    monkeypatch.setattr(loop, "data_parallel", lambda: _FakeParallel())
    with pytest.raises(HeadstartError, match=r"^full: multi-process training covers cross-entropy fine-tunes; l2sp "
                                             r"trains in one process \(launch without accelerate\)\.$"):
        Adapter(TEXT, "full", feature_cache=None, epochs=1, guard="l2sp").fit(text_task, val=text_task)


def test_step_callbacks_see_every_step_and_the_gradients_before_each_update(text_task):
    from headstart.train import Callback

    class Steps(Callback):
        def __init__(self) -> None:
            self.steps, self.grads, self.plans = 0, [], []

        def on_fit_start(self, info) -> None:
            self.plans.append(info["epochs"] * info["steps_per_epoch"])

        def on_step_end(self, step, loss) -> None:
            self.steps += 1

        def on_before_optimizer_step(self, optimizer) -> None:
            self.grads.append(all(p.grad is not None for g in optimizer.param_groups for p in g["params"]))

    seen = Steps()
    Adapter(TEXT, "full", feature_cache=None, epochs=3, batch_size=8, callbacks=[seen]).fit(text_task, val=text_task)
    assert seen.steps == sum(seen.plans) == len(seen.grads) > 0 and all(seen.grads)
