"""Predict with an exported model (``headstart export``) through ONNX Runtime: no torch, no training stack.

    from headstart.deploy import OnnxClassifier
    clf = OnnxClassifier("exported/")
    clf.predict(["great value", "broke after a week"])   # -> the class labels
    clf.predict_proba(images)                            # columns in clf.classes order

Needs only ``onnxruntime``, ``numpy`` and, for text, ``tokenizers`` (the Rust tokenizer library,
reading the exported ``tokenizer.json``) or, for images, ``pillow``: ``pip install 'headstart[deploy]'``.
Inputs are prepared exactly as in training (the same tokenizer settings, the same resize, crop and
normalisation), which the export's check verified.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HeadstartError

__all__ = ["OnnxClassifier"]

FORMAT = 1


class OnnxClassifier:
    """A folder written by ``export_onnx`` (``headstart export MODEL --out DIR``), ready to predict."""

    def __init__(self, folder: str | Path, *, batch_size: int = 64, threads: int | None = None) -> None:
        import onnxruntime

        self.folder = Path(folder)
        manifest_path = self.folder / "deploy.json"
        if not manifest_path.is_file() or not (self.folder / "model.onnx").is_file():
            raise HeadstartError(f"{self.folder} is not an exported model (needs deploy.json and model.onnx); "
                                 "write one with `headstart export MODEL --out DIR`.")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HeadstartError(f"{manifest_path} is damaged (not valid JSON); export the model again.") from None
        if self.manifest.get("format") != FORMAT:
            raise HeadstartError(f"{self.folder} was exported in format {self.manifest.get('format')}; this headstart "
                                 f"reads {FORMAT}. Export it again with this version.")
        self.classes = np.asarray(self.manifest["classes"])
        self.modality = self.manifest["modality"]
        self.batch_size = batch_size
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.folder / "model.onnx"), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types for a damaged graph
            raise HeadstartError(f"{self.folder / 'model.onnx'} cannot be loaded ({type(exc).__name__}); export the "
                                 "model again.") from None
        prepare = self.manifest["prepare"]
        if prepare["kind"] == "tokenizer":
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self.folder / prepare["folder"] / "tokenizer.json"))
            self._tokenizer.enable_truncation(prepare["max_length"])
            self._tokenizer.no_padding()
            self._pad_id = int(prepare.get("pad_id", 0))
        else:
            from .imaging import ImageTransform

            self._transform = ImageTransform(prepare["size"], tuple(prepare["mean"]), tuple(prepare["std"]),
                                             prepare["crop_pct"])

    def _feeds(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        if self.modality == "text":
            if not all(isinstance(x, str) for x in items):
                raise HeadstartError("This is a text model; pass a list of strings.")
            encodings = self._tokenizer.encode_batch(list(items))
            length = max(len(e.ids) for e in encodings)
            ids = np.full((len(items), length), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(items), length), dtype=np.int64)
            for i, e in enumerate(encodings):  # right padding, as in training
                ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, 1
            return {"input_ids": ids, "attention_mask": mask}
        return {"pixels": self._transform.array(items)}

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        if isinstance(inputs, str):
            raise HeadstartError("predict takes a list of inputs; wrap a single text as [text].")
        out = [self.session.run(["probabilities"], self._feeds(inputs[s : s + self.batch_size]))[0]
               for s in range(0, len(inputs), self.batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.classes)))

    def predict(self, inputs: Sequence[Any]) -> np.ndarray:
        return self.classes[self.predict_proba(inputs).argmax(1)]
