"""Deployment: LoRA merged into the weights, ONNX export checked against ONNX Runtime, prediction without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from headstart import Adapter
from headstart.errors import HeadstartError

from .conftest import tiny_backbone

TEXT = lambda pretrained: tiny_backbone("minilm-l6", pretrained)  # noqa: E731
IMAGE = lambda pretrained: tiny_backbone("mobilenetv2", pretrained)  # noqa: E731
TEXTS = ["good movie", "bad plot and dull actor", "great fun", "awful film, I hate it", "love this", "so dull"] * 4
LABELS = ["pos", "neg"] * 12


@pytest.fixture(scope="module")
def lora():
    return Adapter(TEXT, "lora", feature_cache=None, epochs=3, lr=1e-2).fit(TEXTS, LABELS)


def test_merged_lora_predicts_the_same_and_saves_the_plain_architecture(tmp_path, lora):
    from safetensors.torch import load_file

    merged = lora.merge_lora()
    assert not any("lora_" in n for n, _ in merged.model_.named_parameters())
    assert any("lora_" in n for n, _ in lora.model_.named_parameters())  # the original is untouched
    np.testing.assert_allclose(merged.predict_proba(TEXTS), lora.predict_proba(TEXTS), atol=1e-6)
    merged.save(tmp_path / "m")
    keys = load_file(str(tmp_path / "m" / "adapter.safetensors")).keys()
    assert not any("lora_" in k for k in keys) and any(k.endswith("query.weight") for k in keys)
    again = Adapter.load(tmp_path / "m", backbone=TEXT)
    np.testing.assert_allclose(again.predict_proba(TEXTS), lora.predict_proba(TEXTS), atol=1e-6)


def test_a_loaded_lora_model_merges_and_saves_again_with_its_training_record(tmp_path, lora):
    lora.save(tmp_path / "saved")
    loaded = Adapter.load(tmp_path / "saved", backbone=TEXT)
    assert loaded.result_.to_dict() == lora.result_.to_dict()  # how it was trained survives the round trip
    loaded.merge_lora().save(tmp_path / "merged")  # `headstart export saved/ --format merged` does this
    again = Adapter.load(tmp_path / "merged", backbone=TEXT)
    np.testing.assert_allclose(again.predict_proba(TEXTS), lora.predict_proba(TEXTS), atol=1e-6)
    assert again.result_.best_epoch == lora.result_.best_epoch


@pytest.mark.parametrize("backbone", ["minilm-l6", "mobilenetv2"])
def test_every_parameter_efficient_method_merges_into_the_plain_architecture(tmp_path, backbone):
    """Merging is generic over PEFT's tuner layers: IA3 folds in like LoRA, on text and on the conv nets."""
    from headstart.strategies import STRATEGIES, list_strategies
    from headstart.strategies.tuner import ParameterEfficient

    from .conftest import sample_inputs, tiny_backbone

    def build(pretrained):
        return tiny_backbone(backbone, pretrained)

    inputs = sample_inputs(build(True), 8)
    modality = build(True).modality
    for name in (n for n in list_strategies() if issubclass(STRATEGIES[n], ParameterEfficient)
                 and modality in STRATEGIES[n].modalities):
        clf = Adapter(build, name, feature_cache=None, epochs=3, lr=0.05).fit(inputs, [0, 1] * 4)
        merged = clf.merge_adapters()
        prefix = STRATEGIES[name].prefix
        assert not any(prefix in k for k in merged.model_.state_dict()), name
        np.testing.assert_allclose(merged.predict_proba(inputs), clf.predict_proba(inputs), atol=1e-5)
        merged.save(tmp_path / name)
        np.testing.assert_allclose(Adapter.load(tmp_path / name, backbone=build).predict_proba(inputs),
                                   clf.predict_proba(inputs), atol=1e-5)


def test_merging_a_model_without_lora_is_refused():
    probe = Adapter(TEXT, "probe", feature_cache=None).fit(TEXTS, LABELS)
    with pytest.raises(HeadstartError, match=r"has no adapters to merge"):
        probe.merge_lora()


def test_onnx_round_trip_text_reproduces_the_probabilities_without_torch(tmp_path, lora):
    manifest = lora.export_onnx(tmp_path / "onnx", examples=TEXTS[:6] + ["a much longer text " * 40])
    assert manifest["check"]["max_abs_diff"] < 1e-4 and manifest["lora_layers_merged"] > 0
    assert manifest["inputs"] == ["input_ids", "attention_mask"] and manifest["classes"] == ["neg", "pos"]
    code = ("import json, sys; from headstart.deploy import OnnxClassifier; "
            f"c = OnnxClassifier({str(tmp_path / 'onnx')!r}); "
            f"print(json.dumps({{'torch': 'torch' in sys.modules, 'p': c.predict_proba({TEXTS!r}).tolist()}}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["torch"] is False
    np.testing.assert_allclose(np.array(out["p"]), lora.predict_proba(TEXTS), atol=1e-4)


def test_onnx_round_trip_images(tmp_path):
    from headstart.deploy import OnnxClassifier

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(20 + i, 24, 3), dtype=np.uint8) for i in range(12)]
    clf = Adapter(IMAGE, "partial:1", feature_cache=None, epochs=2).fit(images, [0, 1] * 6)
    manifest = clf.export_onnx(tmp_path / "onnx", examples=images)
    assert manifest["inputs"] == ["pixels"] and manifest["check"]["examples"] == 12
    deployed = OnnxClassifier(tmp_path / "onnx")
    np.testing.assert_allclose(deployed.predict_proba(images), clf.predict_proba(images), atol=1e-4)
    assert isinstance(deployed.predict(images[:1])[0].item(), int)  # labels keep their type


def test_a_damaged_export_is_one_sentence(tmp_path, lora):
    from headstart.deploy import OnnxClassifier

    with pytest.raises(HeadstartError, match=r"is not an exported model"):
        OnnxClassifier(tmp_path)
    lora.export_onnx(tmp_path / "onnx")
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(HeadstartError, match=r"cannot be loaded"):
        OnnxClassifier(tmp_path / "onnx")
    (tmp_path / "onnx" / "deploy.json").write_text("{")
    with pytest.raises(HeadstartError, match=r"is damaged"):
        OnnxClassifier(tmp_path / "onnx")


def test_an_export_that_does_not_reproduce_the_model_is_refused(tmp_path, lora, monkeypatch):
    import headstart.deploy

    real = headstart.deploy.OnnxClassifier.predict_proba
    monkeypatch.setattr(headstart.deploy.OnnxClassifier, "predict_proba", lambda self, x: real(self, x)[:, ::-1])
    with pytest.raises(HeadstartError, match=r"does not reproduce the PyTorch model"):
        lora.export_onnx(tmp_path / "onnx")


@pytest.mark.parametrize(("backbone", "spec"), [("minilm-l6", "adapter"), ("mobilenetv2", "adapter"),
                                                ("minilm-l6", "prompt"), ("minilm-l6", "prefix"),
                                                ("mobilenetv2", "bitfit")])
def test_methods_that_do_not_merge_export_as_they_are(tmp_path, backbone, spec):
    """Bottleneck adapters, soft prompts and prefixes are not weight updates: the ONNX graph carries them, checked."""
    from .conftest import sample_inputs, tiny_backbone

    def build(pretrained):
        return tiny_backbone(backbone, pretrained)

    inputs = sample_inputs(build(True), 8)
    clf = Adapter(build, spec, feature_cache=None, epochs=3, lr=0.05).fit(inputs, [0, 1] * 4)
    with pytest.raises(HeadstartError, match=r"has no adapters to merge: .* export it as it is"):
        clf.merge_adapters()
    manifest = clf.export_onnx(tmp_path / "onnx", examples=inputs)
    assert manifest["check"]["max_abs_diff"] < 1e-4
