"""The --device cuda paths, run wherever a CUDA GPU is present (this suite's CI machines have none)."""

from __future__ import annotations

import pytest
import torch

from headstart import Adapter
from headstart.strategies.runner import cached_source
from headstart.train import AdaptedModel, FeatureCache

from .conftest import tiny_backbone

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def tiny(pretrained: bool):
    return tiny_backbone("minilm-l6", pretrained)


def test_a_fit_on_cuda_trains_there_under_the_hardwares_precision(text_task):
    clf = Adapter(tiny, "lora", device="cuda", epochs=2, feature_cache=None).fit(text_task)
    assert next(clf.model_.parameters()).device.type == "cuda"
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert clf.config_.resolve_precision(torch.device("cuda")) == (torch.bfloat16 if bf16 else None)
    assert clf.score(text_task) > 0.5


def test_cached_batches_for_cuda_are_pinned(text_task):
    model = AdaptedModel(tiny(True), 2).cuda()
    source = cached_source(model, FeatureCache(None), model.features_start, text_task, batch_size=8,
                           device=torch.device("cuda"))
    state, labels = source.batch([0, 1, 2])
    assert source.pin and labels.is_pinned() and all(v.is_pinned() for v in state.values())
