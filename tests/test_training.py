"""The loop and the adapter on tiny backbones: learning, early stopping, Δθ, caching, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.data import Task
from headstart.errors import HeadstartError, NotFittedError
from headstart.strategies import create_strategy, list_strategies
from headstart.train import AdaptedModel, Callback, FeatureCache, StopReason, TrainConfig

from .conftest import tiny_backbone

TEXT = lambda pretrained: tiny_backbone("minilm-l6", pretrained)  # noqa: E731
VISION = lambda pretrained: tiny_backbone("mobilenetv2", pretrained)  # noqa: E731
FIT_SPECS = [s if s != "partial" else "partial:1" for s in list_strategies()]  # every registered strategy
TEXT_SPECS = [s for s in FIT_SPECS if "text" in create_strategy(s).modalities]  # bn-adapt: image backbones only
IMAGE_ONLY = [s for s in FIT_SPECS if "text" not in create_strategy(s).modalities]


def _image_task(n_per_class=12):
    """Bright vs dark images: learnable by any backbone."""
    rng = np.random.default_rng(0)
    imgs = [np.clip(rng.normal(60 if i % 2 else 190, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            for i in range(2 * n_per_class)]
    return Task(imgs, np.array([i % 2 for i in range(2 * n_per_class)]), ("bright", "dark"), "image")


class Recorder(Callback):
    """Keeps a copy of the head after every epoch."""

    def __init__(self, model_getter):
        self.get, self.heads, self.records = model_getter, {}, []

    def on_epoch_end(self, record):
        self.records.append(record)
        self.heads[record.epoch] = self.get().head.weight.detach().clone()


def _sources(spec: str, task: Task) -> dict:
    """The extra examples a strategy declares it draws from (``coral``'s unlabelled target: the task's texts)."""
    return {name: task for name in create_strategy(spec).sources()}


@pytest.mark.parametrize("spec", [s for s in TEXT_SPECS if create_strategy(s).uses_labels])  # zero-shot: its own file
def test_every_strategy_learns_the_toy_text_task(text_task, spec):
    clf = Adapter(TEXT, spec, feature_cache=None, epochs=25, lr=3e-3, head_lr=3e-2, patience=25)
    clf.fit(text_task, val=text_task, **_sources(spec, text_task))
    r = clf.result_
    trained = [e for e in r.records if e.train_loss is not None]  # lp-ft's epoch 0 is the probe, scored only
    if trained:  # downhill from the first epoch (the last one alone is dropout's noise for a method that starts
        # from a head that already solves the task and barely moves, such as a soft prompt)
        assert min(e.train_loss for e in trained[1:]) < trained[0].train_loss
    assert r.best_val_acc >= 0.75 and clf.score(text_task) >= 0.75


def test_early_stopping_restores_the_best_epochs_weights(text_task):
    # Validation labels are the training labels flipped: the better it fits, the worse validation gets.
    flipped = Task(text_task.inputs, 1 - text_task.labels, text_task.classes, "text")
    rec = Recorder(lambda: rec.model)
    clf = Adapter(TEXT, "full", feature_cache=None, epochs=30, lr=3e-3, head_lr=3e-2, patience=3, min_epochs=0,
                  monitor="val_acc", callbacks=[rec], head_init="random")
    clf.fit(text_task, val=flipped)
    r = clf.result_
    assert r.stop_reason is StopReason.EARLY_STOPPED and len(r.records) == r.best_epoch + 3
    best, last = rec.heads[r.best_epoch], rec.heads[len(r.records)]
    assert torch.equal(clf.model_.head.weight, best) and not torch.equal(clf.model_.head.weight, last)


@pytest.mark.parametrize("spec,monitor", [("full", None), ("partial:1", None), ("lora", None), ("scratch", "none")])
def test_monitor_none_trains_every_planned_epoch_and_keeps_the_last_weights(text_task, spec, monitor):
    # the fine-tunes keep the last weights by default; scratch (early stopping by default) when asked
    flipped = Task(text_task.inputs, 1 - text_task.labels, text_task.classes, "text")  # validation only gets worse
    rec = Recorder(lambda: rec.model)
    clf = Adapter(TEXT, spec, feature_cache=None, epochs=6, lr=3e-3, head_lr=3e-2, patience=1, min_epochs=0,
                  monitor=monitor, callbacks=[rec])
    clf.fit(text_task, val=flipped)
    r = clf.result_
    assert r.stop_reason is StopReason.SCHEDULE and r.best_epoch == 6 and r.records[-1].val_acc is not None
    assert r.stages[-1]["monitor"] == "none"
    first = min(rec.heads)  # epoch 0 (the probe's head) for a fine-tune, epoch 1 from scratch
    assert torch.equal(clf.model_.head.weight, rec.heads[6]) and not torch.equal(rec.heads[first], rec.heads[6])


@pytest.mark.parametrize("spec", ["scratch", "scratch-small"])
def test_the_from_scratch_baselines_early_stop_by_default(text_task, spec):
    flipped = Task(text_task.inputs, 1 - text_task.labels, text_task.classes, "text")
    clf = Adapter(TEXT, spec, feature_cache=None, epochs=30, lr=3e-3, head_lr=3e-2, patience=2, min_epochs=0)
    clf.fit(text_task, val=flipped)
    r = clf.result_
    assert r.stages[-1]["monitor"] == "val_acc"
    assert r.stop_reason is StopReason.EARLY_STOPPED and len(r.records) < 30


def test_early_stopping_waits_for_min_epochs_and_the_probes_head_is_epoch_0(text_task):
    flipped = Task(text_task.inputs, 1 - text_task.labels, text_task.classes, "text")
    clf = Adapter(TEXT, "full", feature_cache=None, epochs=12, lr=3e-3, patience=2, min_epochs=8, monitor="val_acc")
    clf.fit(text_task, val=flipped)
    r = clf.result_
    assert r.records[0].epoch == 0 and r.records[0].train_loss is None  # the probe's solution, scored first
    assert r.stop_reason is StopReason.EARLY_STOPPED and r.records[-1].epoch == 8  # not at epoch 2
    assert r.stages[-1]["patience"] == 2 and r.stages[-1]["min_epochs"] == 8


def test_accuracy_ties_are_broken_by_the_loss():
    from headstart.train import EarlyStopping, EpochRecord

    stopper = EarlyStopping("val_acc", patience=1)
    records = [EpochRecord("s", e, 0.0, loss, acc, 0.0, 0.0, 1)
               for e, (loss, acc) in enumerate([(0.9, 0.5), (0.8, 0.5), (0.2, 0.25), (0.85, 0.75)])]
    assert [stopper.update(r) for r in records] == [True, True, False, True]
    by_loss = EarlyStopping("val_loss", patience=1)
    assert [by_loss.update(r) for r in records] == [True, True, True, False]


@pytest.mark.parametrize("epochs,min_steps,steps_per_epoch,expected", [
    (None, None, 1, 100),  # 8 labels/class: one step an epoch, so 100 epochs make the strategy's 100 steps
    (None, None, 50, 20),  # enough data: the strategy's 20 epochs already exceed 100 steps
    (None, 10, 1, 20),
    (6, None, 1, 6),  # an explicit setting always wins
])
def test_epochs_are_planned_from_a_step_budget(epochs, min_steps, steps_per_epoch, expected):
    from headstart.train import TrainConfig

    assert TrainConfig(epochs=epochs, min_steps=min_steps).plan_epochs(20, 100, steps_per_epoch) == expected
    assert TrainConfig().stopping(100) == (20, 25) and TrainConfig(patience=3, min_epochs=0).stopping(100) == (3, 0)


def test_non_finite_loss_stops_and_says_why(text_task):
    clf = Adapter(TEXT, "full", feature_cache=None, epochs=10, lr=1e20, head_lr=1e20, grad_clip=None,
                  warmup=0.0).fit(text_task, val=text_task)
    assert clf.result_.stop_reason is StopReason.NON_FINITE_LOSS
    assert any("non-finite" in n for n in clf.result_.notes)


@pytest.mark.parametrize("spec,moved", [("probe", set()), ("partial:1", {"layer2"}), ("full", None),
                                        ("lora", {"layer1", "layer2"}), ("ia3", {"layer1", "layer2"}),
                                        ("dora", {"layer1", "layer2"}),
                                        ("ln-tuning", None), ("bitfit", None),  # the embeddings' LayerNorm too
                                        ("prompt", {"embeddings"}),  # the soft prompt sits beside block 0
                                        ("prefix", {"layer1", "layer2"}),
                                        ("vera", {"layer1", "layer2"})])
def test_delta_theta_is_where_training_happened(text_task, spec, moved):
    clf = Adapter(TEXT, spec, feature_cache=None, epochs=3, lr=1e-3).fit(text_task, val=text_task)
    per_block = clf.result_.delta["per_block"]
    nonzero = {b for b, v in per_block.items() if v > 0}
    assert nonzero == (set(per_block) if moved is None else moved)
    if spec in ("lora", "ia3", "dora", "vera"):  # the base weights did not move: only the effective update counts
        base = clf.model_.backbone.blocks[1].layer.attention.self.value.base_layer.weight
        assert torch.equal(base, TEXT(True).blocks[1].layer.attention.self.value.weight)


@pytest.mark.parametrize("backbone,spec", [(TEXT, s) for s in TEXT_SPECS] + [(VISION, s) for s in IMAGE_ONLY]
                         + [(VISION, "partial:2"), (VISION, "lora"), (VISION, "scratch-small")])
def test_save_load_gives_identical_predictions(tmp_path, text_task, backbone, spec):
    task = text_task if backbone is TEXT else _image_task()
    clf = Adapter(backbone, spec, feature_cache=None, epochs=2).fit(task, val=task, **_sources(spec, task))
    clf.save(tmp_path / "m")
    again = Adapter.load(tmp_path / "m", backbone=backbone)
    np.testing.assert_array_equal(again.predict_proba(task), clf.predict_proba(task))
    assert list(again.classes_) == list(task.classes)


def test_saved_models_hold_only_what_changed(tmp_path, text_task):
    from safetensors.torch import load_file

    sizes = {}
    for spec in ("probe", "lora", "partial:1", "full"):
        Adapter(TEXT, spec, feature_cache=None, epochs=1).fit(text_task, val=text_task).save(tmp_path / spec)
        sizes[spec] = load_file(str(tmp_path / spec / "adapter.safetensors"))
    assert set(sizes["probe"]) == {"head.weight", "head.bias"}
    assert all(k.startswith("head.") or "lora_" in k for k in sizes["lora"])
    assert {k.split(".")[2] for k in sizes["partial:1"] if k.startswith("backbone.")} == {"2"}
    numel = {spec: sum(t.numel() for t in tensors.values()) for spec, tensors in sizes.items()}
    assert numel["full"] > numel["partial:1"] > numel["probe"] and numel["full"] > numel["lora"] > numel["probe"]


def test_loading_onto_another_backbone_is_refused(tmp_path, text_task):
    Adapter(TEXT, "probe", feature_cache=None).fit(text_task, val=text_task).save(tmp_path / "m")

    def other(pretrained):
        b = TEXT(pretrained)
        with torch.no_grad():
            b.blocks[0].embeddings.word_embeddings.weight.mul_(2)
        return b

    with pytest.raises(HeadstartError, match="was saved for backbone minilm-l6 .*load it onto the backbone"):
        Adapter.load(tmp_path / "m", backbone=other)


def test_tensors_shared_by_several_layers_are_saved_once(tmp_path, text_task):
    """VeRA's random projections are one tensor that every adapted layer reads: stored once, restored to each."""
    import json

    from safetensors.torch import load_file

    clf = Adapter(TEXT, "vera", feature_cache=None, epochs=2, lr=0.05).fit(text_task, val=text_task)
    clf.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "adapter.json").read_text())
    stored = load_file(str(tmp_path / "m" / "adapter.safetensors"))
    shared = [k for k in config["saved_tensors"] if "vera_A" in k]
    assert len(shared) > 1 and sum(k in stored for k in shared) == 1
    assert set(shared) - set(stored) <= set(config["aliases"])
    again = Adapter.load(tmp_path / "m", backbone=TEXT)
    np.testing.assert_array_equal(again.predict_proba(text_task), clf.predict_proba(text_task))


def test_a_model_saved_by_another_version_of_its_method_is_refused(tmp_path, text_task, monkeypatch):
    from headstart.strategies.lora import LoRA

    Adapter(TEXT, "lora", feature_cache=None, epochs=1).fit(text_task, val=text_task).save(tmp_path / "m")
    Adapter.load(tmp_path / "m", backbone=TEXT)  # the same version loads
    monkeypatch.setattr(LoRA, "behaviour_version", 2)
    with pytest.raises(HeadstartError, match=r"was saved by lora version \[1, 1\], and this headstart's lora is "
                                             r"version \[1, 2\]: .* fit it again with this version\.$"):
        Adapter.load(tmp_path / "m", backbone=TEXT)


def test_feature_cache_hits_on_second_run_and_misses_on_new_data_or_weights(tmp_path, text_task):
    cache_dir = tmp_path / "features"
    first = Adapter(TEXT, "probe", feature_cache=cache_dir).fit(text_task, val=text_task)
    n_unique = len(set(text_task.inputs))
    cache = FeatureCache(cache_dir)  # a new process would start like this: from disk
    clf = Adapter(TEXT, "probe", feature_cache=cache)
    clf.fit(text_task, val=text_task)
    assert cache.misses == 0 and cache.hits == 2 * len(text_task)
    np.testing.assert_allclose(clf.predict_proba(text_task), first.predict_proba(text_task))

    changed = Task([t + " !" for t in text_task.inputs], text_task.labels, text_task.classes, "text")
    clf.fit(changed, val=changed)
    assert cache.misses == n_unique

    def other_weights(pretrained):
        b = TEXT(pretrained)
        with torch.no_grad():
            b.blocks[1].layer.output.dense.bias.add_(0.5)
        return b

    clf.backbone = other_weights
    clf.fit(text_task, val=text_task)
    assert cache.misses == 2 * n_unique


def test_partial_cache_gives_the_same_training_as_running_the_bottom():
    task = _image_task()
    # fp32: under bf16 autocast the uncached path rounds the frozen bottom's output, the cached one does not
    cached = Adapter(VISION, "partial:2", feature_cache=None, epochs=3, precision="fp32").fit(task, val=task)
    direct = Adapter(VISION, "partial:2", feature_cache=None, epochs=3, cache_features=False,
                     precision="fp32").fit(task, val=task)
    assert any("ran once (cached)" in n for n in cached.result_.notes)
    assert not any("cached" in n for n in direct.result_.notes)
    np.testing.assert_allclose(cached.predict_proba(task), direct.predict_proba(task), rtol=1e-4, atol=1e-5)


def test_augmentation_bypasses_the_cache_and_still_learns():
    task = _image_task()
    clf = Adapter(VISION, "partial:2", feature_cache=None, epochs=4, augment=True).fit(task, val=task)
    assert not any("cached" in n for n in clf.result_.notes) and len(clf.result_.records) >= 1


def test_same_seed_same_result_other_seed_other_result(text_task):
    runs = [Adapter(TEXT, "full", feature_cache=None, epochs=2, seed=s).fit(text_task).predict_proba(text_task)
            for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_user_errors(text_task):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        Adapter(TEXT).predict(["good"])
    clf = Adapter(TEXT, "probe", feature_cache=None).fit(text_task, val=text_task)
    with pytest.raises(HeadstartError, match="is a text model but got ndarray input"):
        clf.predict([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(HeadstartError, match="is a image model but the data are texts|image model but the data"):
        Adapter(VISION, "probe").fit(text_task)
    with pytest.raises(HeadstartError, match=r"Labels \['meh'\] do not occur in the training data"):
        clf.score(["good movie"], ["meh"])
    with pytest.raises(HeadstartError, match="needs labels"):
        Adapter(TEXT).fit(["a", "b"])
    with pytest.raises(HeadstartError, match="The 'monitor' parameter of TrainConfig must be"):
        TrainConfig(monitor="accuracy")


@pytest.mark.parametrize("selection,how", [("cv", "cross-validation on training + validation, then refit"),
                                           ("val", "chosen by on the validation split")])
def test_probe_selects_c_as_asked(text_task, selection, how):
    clf = Adapter(TEXT, "probe", feature_cache=None, selection=selection).fit(text_task)
    assert any(how.replace("chosen by ", "") in n for n in clf.result_.notes)
    assert clf.result_.stop_reason is StopReason.SOLVED and 0.0 <= clf.result_.best_val_acc <= 1.0
    assert clf.score(text_task) >= 0.75


def test_contrastive_pairs_are_distinct_balanced_and_never_self():
    from headstart.strategies.contrastive import draw_pairs

    labels = np.array([0, 0, 0, 1, 1, 2])  # 4 same-class pairs, 11 different-class pairs
    pairs = draw_pairs(labels, iterations=3, seed=0)
    assert all(a < b for a, b, _ in pairs)
    assert all((labels[a] == labels[b]) == (t == 1.0) for a, b, t in pairs)
    same = [p for p in pairs if p[2] == 1.0]
    different = [p for p in pairs if p[2] == 0.0]
    assert len(same) == len(different) == 11  # the smaller side is cycled up to the larger one
    assert len(set(different)) == 11 and len(set(same)) == 4  # every distinct pair, none missing
    assert pairs == draw_pairs(labels, iterations=3, seed=0) != draw_pairs(labels, iterations=3, seed=1)


def test_contrastive_pairs_are_capped_per_text():
    from headstart.strategies.contrastive import draw_pairs

    labels = np.repeat([0, 1], 30)  # 870 same-class and 900 different-class pairs
    pairs = draw_pairs(labels, iterations=2, seed=0)
    assert len(pairs) == 2 * 2 * 60 and len(set(pairs)) == len(pairs)
    one_class = draw_pairs(np.zeros(5, dtype=int), iterations=2, seed=0)  # no different-class side at all
    assert len(one_class) == 10 and {t for *_, t in one_class} == {1.0}


def test_pair_loss_is_zero_for_ideal_features_and_weighs_both_halves_equally():
    from headstart.strategies.contrastive import pair_loss

    labels = torch.tensor([0, 0, 0, 1])  # 3 same-class pairs, 3 different-class pairs
    ideal = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])  # scale must not matter
    assert pair_loss(ideal, labels).item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.ones(4, 2)  # every cosine 1: the same-class half is perfect, the other half costs 1
    assert pair_loss(collapsed, labels).item() == pytest.approx(0.5)
    assert pair_loss(collapsed, torch.zeros(4, dtype=torch.long)).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("options,how,epochs,steps", [
    ({"epochs": 2}, "every pair within a step", 2, 2),  # 48 + 48 examples, 32 a step: 3 steps, the last one 32 too
    ({"sampling": "pairs", "iterations": 2}, "SetFit's sampled pairs", 1, None)])
def test_contrastive_trains_through_the_loop_and_saves(tmp_path, text_task, options, how, epochs, steps):
    rec = Recorder(lambda: rec.model)
    clf = Adapter(TEXT, "contrastive", feature_cache=None, callbacks=[rec], **options)
    clf.fit(text_task, val=text_task)
    r = clf.result_
    pairs = r.stages[0]
    assert r.delta["l2"] > 0 and how in pairs["objective"] and pairs["epochs"] == epochs
    assert "monitor" not in pairs and "trained on the 48 training + 48 validation examples" in r.notes[0]
    # the callbacks see the pair stage's epochs (training loss only: nothing is held out)
    seen = [e for e in rec.records if e.stage == "contrastive/pairs"]
    assert len(seen) == epochs and all(e.val_loss is None and e.train_loss > 0 for e in seen)
    if steps is not None:
        assert pairs["steps_per_epoch"] == 3
    clf.save(tmp_path / "m")
    again = Adapter.load(tmp_path / "m", backbone=TEXT)
    np.testing.assert_array_equal(again.predict_proba(text_task), clf.predict_proba(text_task))


def test_an_objective_chooses_the_batches_and_adds_a_penalty(text_task):
    """The loop's one hook: batches, a data term and a penalty on the weights, all honoured."""
    from headstart.strategies.runner import cached_source
    from headstart.train import FeatureCache, TrainConfig, build_param_groups, run_training
    from headstart.train.objective import Objective

    class Shrink(Objective):
        def __init__(self, strength):
            self.strength, self.seen = strength, []

        def steps(self, n, batch_size, generator):
            return [[i] for i in range(n)]  # one example per step, in order

        def steps_per_epoch(self, n, batch_size):
            return n

        def loss(self, model, batch, start):
            self.seen.append(batch.index)
            return super().loss(model, batch, start)

        def penalty(self, model):
            return self.strength * model.head.weight.pow(2).sum()

    norms = []
    for strength in (0.0, 10.0):
        torch.manual_seed(0)
        model = AdaptedModel(TEXT(True), 2)
        groups, start = build_param_groups(model, create_strategy("probe").plan(model.n_blocks), 1e-2, 1e-2, 0.0)
        src = cached_source(model, FeatureCache(), start, text_task, batch_size=8, device=torch.device("cpu"))
        objective = Shrink(strength)
        run_training(model, groups, start, src, src, TrainConfig(epochs=2, monitor="val_loss", patience=5), 2,
                     stage="shrink", objective=objective)
        assert objective.seen == [[i] for i in range(len(text_task))] * 2
        norms.append(model.head.weight.norm().item())
    assert norms[1] < 0.5 * norms[0]


class _StartWeights(Callback):
    """The body's weights when each stage starts."""

    def __init__(self) -> None:
        self.seen = []

    def on_fit_start(self, info) -> None:
        self.seen.append({k: v.detach().clone() for k, v in self.model.backbone.state_dict().items()})


def test_warm_start_continues_from_the_fitted_model(text_task):
    clf = Adapter(TEXT, "full", feature_cache=None, epochs=2, lr=1e-3, warm_start=True).fit(text_task, val=text_task)
    after_first = {k: v.clone() for k, v in clf.model_.backbone.state_dict().items()}
    probe = _StartWeights()
    clf.set_params(callbacks=[probe]).fit(text_task, val=text_task)
    assert all(torch.equal(probe.seen[0][k], v) for k, v in after_first.items())  # no fresh backbone
    fresh = _StartWeights()
    Adapter(TEXT, "full", feature_cache=None, epochs=2, callbacks=[fresh]).fit(text_task, val=text_task)
    assert not all(torch.equal(fresh.seen[0][k], v) for k, v in after_first.items())


def test_warm_start_on_new_classes_keeps_the_old_head_through_save_and_load(tmp_path, text_task):
    clf = Adapter(TEXT, "lora", feature_cache=None, epochs=1, warm_start=True, incremental="task").fit(
        text_task, val=text_task)
    old_head = clf.model_.head.weight.detach().clone()
    three = Task(list(text_task.inputs) + ["so so", "it was fine", "meh", "okay I guess"] * 3,
                 np.concatenate([text_task.labels, [2] * 12]), ("pos", "neg", "mixed"), "text", "second")
    clf.fit(three, val=three)
    assert list(clf.classes_) == ["pos", "neg", "mixed"]
    assert clf.heads_ == {"toy-text": ["pos", "neg"]}
    assert torch.equal(clf.model_.heads["toy-text"].weight, old_head)  # the old task's head is untouched
    clf.save(tmp_path / "m")
    again = Adapter.load(tmp_path / "m", backbone=TEXT)
    assert again.heads_ == clf.heads_ and torch.equal(again.model_.heads["toy-text"].weight, old_head)
    np.testing.assert_array_equal(again.predict_proba(three), clf.predict_proba(three))
