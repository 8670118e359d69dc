"""Mixed precision: which dtype trains where, and that a bf16-trained model stays fp32 and learns."""

from __future__ import annotations

import pytest
import torch

from headstart import Adapter
from headstart.errors import HeadstartError
from headstart.train import TrainConfig
from headstart.train.precision import autocast, native_bf16, resolve_precision

from .conftest import tiny_backbone

CPU = torch.device("cpu")
TEXT = lambda pretrained: tiny_backbone("minilm-l6", pretrained)  # noqa: E731


def _no_native_bf16(monkeypatch):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)


def test_auto_uses_bf16_only_where_the_cpu_has_it(monkeypatch):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: True, raising=False)
    assert native_bf16(CPU) and resolve_precision("auto", CPU) is torch.bfloat16
    _no_native_bf16(monkeypatch)
    assert not native_bf16(CPU) and resolve_precision("auto", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16  # asked for explicitly: emulated, still honoured
    assert resolve_precision("fp32", CPU) is None


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(HeadstartError, match="'auto', 'bf16' or 'fp32'"):
        TrainConfig(precision="fp16")
    with pytest.raises(HeadstartError, match="auto, bf16, fp32"):
        resolve_precision("half", CPU)


def test_autocast_runs_matmuls_in_the_asked_dtype():
    x = torch.randn(4, 8)
    with autocast(torch.bfloat16, CPU):
        assert (x @ x.T).dtype is torch.bfloat16
    with autocast(None, CPU):
        assert (x @ x.T).dtype is torch.float32


@pytest.mark.parametrize("spec", ["full", "contrastive"])
def test_bf16_training_learns_and_keeps_fp32_weights(text_task, spec):
    clf = Adapter(TEXT, spec, feature_cache=None, epochs=25, lr=3e-3, head_lr=3e-2, patience=25, precision="bf16")
    clf.fit(text_task, val=text_task)
    assert clf.score(text_task) >= 0.75
    assert {p.dtype for p in clf.model_.parameters()} == {torch.float32}
    assert any("bf16 autocast" in n for n in clf.result_.notes)


def test_bf16_and_fp32_training_differ_but_fp32_is_reproducible(text_task):
    fits = [Adapter(TEXT, "full", feature_cache=None, epochs=3, precision=p).fit(text_task, val=text_task)
            for p in ("fp32", "fp32", "bf16")]
    probs = [f.predict_proba(text_task) for f in fits]
    assert not any("autocast" in n for n in fits[0].result_.notes)
    assert (probs[0] == probs[1]).all() and not (probs[0] == probs[2]).all()
