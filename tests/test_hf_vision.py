"""``hf:`` image encoders, family by family: headstart runs the stem, each layer or stage and the family's pooling
itself, so its features must equal the model's own (``pooler_output``, or the [CLS] state ViT's and DeiT's
classifiers read, or CLIP's projected image embedding); and a ``save_pretrained`` checkpoint of every family,
with its image-processor config, goes through the strategies that cut it into blocks, with save and load.

Tiny configurations built here (``from_config``): no weights, no network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

from headstart.backbones.hf_vision import HFVisionBackbone
from headstart.errors import HeadstartError

VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
       "image_size": 32, "patch_size": 8}
STAGES = {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}
FIXED = {"size": {"height": 32, "width": 32}}  # resized to exactly the size the model was built for
CROP = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
#: family -> (config, image processor, its settings)
FAMILIES = {
    "vit": (tf.ViTConfig(**VIT), tf.ViTImageProcessorPil, FIXED),
    "deit": (tf.DeiTConfig(**VIT), tf.DeiTImageProcessorPil, {**FIXED, "crop_size": FIXED["size"]}),
    "dinov2": (tf.Dinov2Config(**{k: v for k, v in VIT.items() if k != "intermediate_size"}),
               tf.BitImageProcessorPil, CROP),
    "convnext": (tf.ConvNextConfig(**STAGES), tf.ConvNextImageProcessorPil, {"size": {"shortest_edge": 32}}),
    "resnet": (tf.ResNetConfig(embedding_size=8, **STAGES), tf.ConvNextImageProcessorPil,
               {"size": {"shortest_edge": 32}}),
    # two stages: the first ends by merging patches, so the grid the second stage reads is halved
    "swin": (tf.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                           window_size=4), tf.ViTImageProcessorPil, FIXED),
    "clip": (tf.CLIPConfig(text_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                        "intermediate_size": 37, "vocab_size": 99, "bos_token_id": 0,
                                        "eos_token_id": 2, "pad_token_id": 1},
                           vision_config=VIT, projection_dim=16), tf.CLIPImageProcessorPil, CROP),
    "clip_vision_model": (tf.CLIPVisionConfig(**VIT), tf.CLIPImageProcessorPil, CROP),
}


def _images(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, size=(40 + i, 50, 3), dtype=np.uint8) for i in range(n)]


def _backbone(family: str) -> tuple[HFVisionBackbone, torch.nn.Module]:
    config, processor, settings = FAMILIES[family]
    torch.manual_seed(0)
    model = tf.AutoModel.from_config(config).eval()
    return HFVisionBackbone(model, processor(**settings), name=f"hf:{family}", pretrained=True,
                            source="test").eval(), model


def _their_features(family: str, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    if family == "clip":
        return model.get_image_features(pixel_values=pixels).pooler_output
    out = model(pixel_values=pixels)
    return out.last_hidden_state[:, 0] if family in ("vit", "deit") else out.pooler_output.flatten(1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_block_by_block_features_equal_the_models_own(family):
    backbone, model = _backbone(family)
    state = backbone.preprocess(_images())
    assert state["pixels"].shape[-2:] == (32, 32)
    with torch.no_grad():
        ours = backbone.forward_features(state)
        theirs = _their_features(family, model, state["pixels"])
        halfway = backbone.run_blocks(backbone.run_blocks(state, 0, 2), 2)  # a cut between blocks changes nothing
    assert ours.shape == (3, backbone.feature_dim)
    assert torch.allclose(ours, theirs, atol=1e-5), family
    assert torch.allclose(backbone.pool(halfway), ours, atol=1e-6), family


def test_swin_stages_read_the_grid_the_previous_stage_left():
    """Patch merging halves the grid: a stage given the stem's grid instead computes something else (or fails)."""
    backbone, model = _backbone("swin")
    state = backbone.run_blocks(backbone.preprocess(_images()), 0, 2)
    assert state["grid"].tolist() == [[4, 4]] * 3  # 32 px / patch 4 = 8, merged once: 4
    assert state["hidden"].shape[1] == 16


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_stage_of_every_family_has_lora_and_ia3_targets(family):
    from headstart.strategies.tuner import peft_targets

    backbone, _ = _backbone(family)
    for method in ("lora", "ia3"):
        targets = peft_targets(backbone, method)
        for i in range(1, len(backbone.blocks)):
            assert [t for t in targets if t.startswith(f"blocks.{i}.")], (family, method, i)
        assert not [t for t in targets if t.startswith("blocks.0.")], (family, method)  # never the stem
    norms = peft_targets(backbone, "ln-tuning")  # LayerNorm in the transformers, BatchNorm in ResNet
    assert all(any(t.startswith(f"blocks.{i}.") for t in norms) for i in range(1, len(backbone.blocks))), family


def test_the_processor_decides_the_preprocessing_id():
    a, model = _backbone("vit")
    other = tf.ViTImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.4, 0.4, 0.4])
    b = HFVisionBackbone(model, other, name="hf:vit", pretrained=True, source="test")
    assert a.preprocess_id != b.preprocess_id
    assert a.preprocess_id == _backbone("vit")[0].preprocess_id


@pytest.mark.parametrize("family", ["clip", "convnext"])
def test_the_small_scratch_twin_reads_images_of_the_processors_size_and_normalisation(family):
    backbone, _ = _backbone(family)
    twin = backbone.small_twin()
    processor = backbone.processor
    assert twin.transform.size == 32 and twin.transform.mean == pytest.approx(tuple(processor.image_mean))
    assert twin.embed(_images(2)).shape == (2, twin.feature_dim)


def test_an_image_family_not_covered_is_refused_by_name():
    config = tf.BeitConfig(**VIT)
    with pytest.raises(HeadstartError, match=r"hf:beit: the 'beit' image family is not supported .*vit, deit"):
        HFVisionBackbone(tf.AutoModel.from_config(config), tf.ViTImageProcessorPil(), name="hf:beit",
                         pretrained=True, source="test")


def test_a_text_path_given_to_an_image_model_is_one_sentence():
    backbone, _ = _backbone("vit")
    with pytest.raises(HeadstartError, match="is an image model but got 'a good film'"):
        backbone.preprocess(["a good film"])


COLOURS = [(200, 30, 30), (30, 30, 200)]


def _colour_task(n: int = 6) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(1)
    images, labels = [], []
    for i in range(2 * n):
        base = np.array(COLOURS[i % 2], dtype=np.int16)
        images.append(np.clip(base + rng.integers(-20, 20, size=(36, 36, 3)), 0, 255).astype(np.uint8))
        labels.append(i % 2)
    return images, labels


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_saved_checkpoint_of_each_family_fits_saves_and_loads_as_hf_folder(family, tmp_path):
    """``hf:<folder>`` of a ``save_pretrained`` checkpoint and its processor, through fit, predict, save and load
    with the strategies that cut it into blocks."""
    from headstart import Adapter

    config, processor, settings = FAMILIES[family]
    torch.manual_seed(0)
    tf.AutoModel.from_config(config).save_pretrained(tmp_path / "ckpt")
    processor(**settings).save_pretrained(tmp_path / "ckpt")
    images, labels = _colour_task()
    for strategy in ("partial:1", "lldr", "lora"):
        clf = Adapter(f"hf:{tmp_path / 'ckpt'}", strategy, feature_cache=None, epochs=2, lr=1e-3)
        clf.fit(images, labels)
        assert set(clf.predict(images[:4])) <= {0, 1}
        again = type(clf).load(clf.save(tmp_path / strategy))
        assert again.predict_proba(images[:4]) == pytest.approx(clf.predict_proba(images[:4]), abs=1e-5), strategy


def test_an_hf_image_model_is_refused_by_onnx_export_in_one_sentence(tmp_path):
    from headstart import Adapter

    config, processor, settings = FAMILIES["vit"]
    tf.AutoModel.from_config(config).save_pretrained(tmp_path / "ckpt")
    processor(**settings).save_pretrained(tmp_path / "ckpt")
    images, labels = _colour_task(3)
    clf = Adapter(f"hf:{tmp_path / 'ckpt'}", "probe", feature_cache=None).fit(images, labels)
    with pytest.raises(HeadstartError, match="prepares its inputs in a way deployment cannot repeat"):
        clf.export_onnx(tmp_path / "onnx")
