"""BatchNorm in a fine-tune: frozen statistics on a pretrained body (the default), batch statistics from scratch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from headstart import Adapter
from headstart.errors import HeadstartError
from headstart.race import RaceSpec
from headstart.race.grid import RunSpec
from headstart.train import AdaptedModel, TrainConfig, set_train_mode

from .conftest import tiny_backbone
from .test_training import VISION, _image_task


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _stats(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in _norms(model) for t in (m.running_mean, m.running_var)]


def test_the_default_freezes_a_pretrained_bodys_statistics_and_lets_a_random_one_learn_them():
    assert TrainConfig().resolve_batchnorm(pretrained=True) == "frozen"
    assert TrainConfig().resolve_batchnorm(pretrained=False) == "batch"
    assert TrainConfig(batchnorm="batch").resolve_batchnorm(pretrained=True) == "batch"


@pytest.mark.parametrize("mode, training", [("frozen", False), ("batch", True)])
def test_frozen_batchnorm_is_in_inference_mode_and_its_scale_and_shift_still_train(mode, training):
    model = AdaptedModel(tiny_backbone("mobilenetv2"), 2)
    for p in model.parameters():
        p.requires_grad_(True)
    set_train_mode(model, mode)
    norms = _norms(model)
    assert norms and all(m.training is training for m in norms)
    assert all(p.requires_grad for m in norms for p in m.parameters())
    assert model.head.training  # everything else trains


@pytest.mark.parametrize("strategy", ["full", "partial:2"])
def test_a_pretrained_fine_tune_keeps_the_running_statistics_unless_asked(strategy):
    task = _image_task()
    frozen = Adapter(VISION, strategy, feature_cache=None, epochs=2).fit(task, val=task)
    batch = Adapter(VISION, strategy, feature_cache=None, epochs=2, batchnorm="batch").fit(task, val=task)
    before = _stats(AdaptedModel(VISION(True), 2))
    assert all(torch.equal(a, b) for a, b in zip(before, _stats(frozen.model_)))
    assert any(not torch.equal(a, b) for a, b in zip(before, _stats(batch.model_)))
    moved = [m.weight for m in _norms(frozen.model_)]
    assert any(not torch.equal(w, m.weight) for w, m in zip(moved, _norms(AdaptedModel(VISION(True), 2))))


def test_from_scratch_the_statistics_are_learnt():
    task = _image_task()
    clf = Adapter(VISION, "scratch", feature_cache=None, epochs=2, seed=0).fit(task, val=task)
    assert any(float(m.running_var.sub(1).abs().max()) > 1e-3 for m in _norms(clf.model_))


def test_the_setting_is_part_of_a_vision_runs_key_and_leaves_text_keys_alone():
    run = RunSpec("full", 8, 0)

    def key(backbone, **train):
        return RaceSpec("d", backbone, strategies=["full"], budgets=[8], train_options=train).run_key(run, "d")

    assert key("mobilenetv2") != key("mobilenetv2", batchnorm="batch")
    assert key("mobilenetv2") == key("mobilenetv2", batchnorm="frozen")  # the default, spelt out
    assert "batchnorm" not in RaceSpec("d", "minilm-l6", strategies=["full"], budgets=[8]).run_identity(run, "d")[
        "train"]


def test_a_bad_value_is_refused_in_one_sentence():
    with pytest.raises(HeadstartError, match="batchnorm"):
        TrainConfig(batchnorm="train")
