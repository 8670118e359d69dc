"""Export a fitted ``Adapter`` for deployment: LoRA merged into the weights, and ONNX checked by ONNX Runtime.

``export_onnx`` writes a folder that ``headstart.deploy.OnnxClassifier`` (ONNX Runtime, numpy, the
tokenizer or PIL; no torch, no training dependencies) predicts from:

- ``model.onnx``: model-ready inputs (``input_ids``/``attention_mask``, or ``pixels``) to class
  probabilities, batch size and text length dynamic; LoRA adapters are merged first, so the graph
  is the plain architecture;
- ``deploy.json``: classes, modality, how inputs are prepared (tokenizer settings, or the image
  transform's size, crop and normalisation), versions, and the result of the check;
- ``tokenizer/`` for a text model (the tokenizer's own files).

The check runs ``OnnxClassifier`` on example inputs (yours, or built-in ones) and compares its
probabilities with the PyTorch model's; the export fails with a sentence when they differ by more
than ``atol``. The ``export`` extra installs what exporting needs (``onnx``, ``onnxscript``,
``onnxruntime``); the ``deploy`` extra what predicting needs.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import HeadstartError
from .train.delta import tuner_layers

if TYPE_CHECKING:
    from .adapter import Adapter
    from .train import AdaptedModel

__all__ = ["DEPLOY_FORMAT", "export_onnx", "merge_adapters", "merge_lora"]

DEPLOY_FORMAT = 1
MODEL, MANIFEST, TOKENIZER = "model.onnx", "deploy.json", "tokenizer"


def merge_adapters(model: AdaptedModel) -> int:
    """Fold every parameter-efficient update into its base layer and drop the injected tensors; returns how many
    layers. LoRA: W + B·A·alpha/r; IA3: W scaled by its vector. Generic over PEFT's tuner layers.

    PEFT's own merge does the arithmetic; the merged model computes the same function without the
    extra tensors (one matmul per layer at inference, and a plain architecture to export).
    """
    merged = 0
    for name, module in tuner_layers(model):
        module.merge(safe_merge=True)
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], module.get_base_layer())
        merged += 1
    return merged


merge_lora = merge_adapters  # the name it had when LoRA was the only method


class _Probabilities(nn.Module):
    """Model-ready tensors in the backbone's state order, class probabilities out."""

    def __init__(self, model: AdaptedModel, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(dict(zip(self.names, tensors))).float(), dim=-1)


def _preparation(backbone: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """How deployment prepares inputs (manifest entry) and the ONNX input names per state key."""
    from .imaging import ImageTransform

    if hasattr(backbone, "tokenizer") and hasattr(backbone, "max_length"):
        return ({"kind": "tokenizer", "max_length": int(backbone.max_length), "folder": TOKENIZER,
                 "pad_id": int(backbone.tokenizer.pad_token_id or 0)},
                {"input_ids": "input_ids", "attention_mask": "attention_mask"})
    transform = getattr(backbone, "transform", None)
    if isinstance(transform, ImageTransform):
        return ({"kind": "image", "size": transform.size, "crop_pct": transform.crop_pct,
                 "mean": list(transform.mean), "std": list(transform.std)}, {"x": "pixels"})
    raise HeadstartError(f"{backbone.name} prepares its inputs in a way deployment cannot repeat (it needs a "
                         "tokenizer or headstart's image transform); it cannot be exported to ONNX.")


def _default_examples(modality: str) -> list[Any]:
    if modality == "text":
        return ["a short text", "a somewhat longer text to check that padding and lengths are handled", "x",
                "the fourth example, with punctuation: yes!", " ".join(["a text longer than any max_length"] * 80)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in ((40, 32), (64, 64), (97, 120))]


def export_onnx(adapter: Adapter, folder: str | Path, *, examples: Sequence[Any] | None = None,
                atol: float = 1e-4, opset: int | None = None) -> dict[str, Any]:
    """Write ``folder`` (see the module docstring); returns the manifest, the check's result included."""
    adapter._check_fitted()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HeadstartError(f"{folder} is a file; export into a folder (it is created if missing).")
    try:
        import onnxruntime  # noqa: F401  (the check needs it: fail before the slow export)
        import onnxscript  # noqa: F401
    except ImportError:
        raise HeadstartError("Exporting to ONNX needs onnx, onnxscript and onnxruntime: "
                             "pip install 'headstart[export]'.") from None
    model = copy.deepcopy(adapter.model_).cpu().eval()
    merged = merge_adapters(model)
    backbone = model.backbone
    preparation, names = _preparation(backbone)
    sample = backbone.preprocess(list(_default_examples(adapter.modality_))[:2])
    keys = [k for k in sample if k in names]
    folder.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch")
    if "input_ids" in keys:  # batch and text length vary (one length for both text inputs)
        length = torch.export.Dim("length")
        dynamic = tuple({0: batch, 1: length} for _ in keys)
    else:
        dynamic = tuple({0: batch} for _ in keys)
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is about torch, not the model
            torch.onnx.export(_Probabilities(model, keys).eval(), tuple(sample[k] for k in keys),
                              str(folder / MODEL), input_names=[names[k] for k in keys],
                              output_names=["probabilities"], dynamic_shapes=(dynamic,), dynamo=True,
                              opset_version=opset, verbose=False, external_data=False)
    except Exception as exc:  # the exporter raises many types; say which model and why, in one sentence
        raise HeadstartError(f"{backbone.name} could not be exported to ONNX ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}).") from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    if preparation["kind"] == "tokenizer":
        backbone.tokenizer.save_pretrained(str(folder / TOKENIZER))
    manifest = {"format": DEPLOY_FORMAT, "headstart": __version__, "torch": torch.__version__,
                "modality": adapter.modality_, "classes": [_plain(c) for c in adapter.classes_],
                "inputs": [names[k] for k in keys], "prepare": preparation, "lora_layers_merged": merged,
                "backbone": adapter.backbone_identity_.get("name"), "strategy": adapter.strategy_.spec}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    manifest["check"] = _check(adapter, folder, list(examples) if examples is not None else
                               _default_examples(adapter.modality_), atol)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check(adapter: Adapter, folder: Path, examples: list[Any], atol: float) -> dict[str, Any]:
    """ONNX Runtime's probabilities against PyTorch's on ``examples``; a sentence when they differ."""
    import onnxruntime

    from .deploy import OnnxClassifier

    if not examples:
        raise HeadstartError("The export check needs at least one example input.")
    expected = adapter.predict_proba(examples)
    got = OnnxClassifier(folder).predict_proba(examples)
    diff = float(np.abs(expected - got).max())
    if not diff <= atol:
        raise HeadstartError(f"The ONNX export of {folder} does not reproduce the PyTorch model: probabilities "
                             f"differ by up to {diff:.2e} (allowed {atol:g}) on {len(examples)} examples.")
    return {"examples": len(examples), "max_abs_diff": diff, "atol": atol, "onnxruntime": onnxruntime.__version__}
