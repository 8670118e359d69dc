"""A cache of what a frozen bottom computes, per example, reused across epochs, budgets, seeds and runs.

The key of a cached item is (weights of the frozen blocks, preprocessing, boundary) -> a namespace,
and the example's content hash within it. Changing the data, the weights or the boundary therefore
misses; a smaller label budget or another seed hits. Items live in memory and, when a folder is
given, in safetensors shards on disk (one shard per batch of new items, written atomically). A shard's
name carries the sha256 of its bytes: a shard damaged in place (truncated, or the same size with other
bytes) is detected on read, dropped with a warning, and its items are computed again.

Augmentation changes the input every epoch, so an augmented run never uses this cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load, save

from ..backbones import State
from ..data import Task
from .model import AdaptedModel

__all__ = ["FeatureCache"]

log = logging.getLogger(__name__)


class FeatureCache:
    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, dict[str, State]] = {}
        self.hits = 0
        self.misses = 0

    def namespace(self, model: AdaptedModel, boundary: int) -> str:
        b = model.backbone
        stop = min(boundary, model.n_blocks)
        pooled = boundary == model.features_start
        raw = f"{b.name}|{b.weights_id(stop=stop)}|{b.preprocess_id}|{boundary}|{pooled}"
        if pooled and b.pool_id:  # pooled features also depend on how the last state is pooled
            raw += f"|pool={b.pool_id}"
        return hashlib.sha1(raw.encode()).hexdigest()[:20]

    def _load_namespace(self, ns: str) -> dict[str, State]:
        if ns in self._memory:
            return self._memory[ns]
        items: dict[str, State] = {}
        if self.folder is not None and (self.folder / ns).is_dir():
            for shard in sorted((self.folder / ns).glob("*.safetensors")):
                for key, tensor in self._read_shard(shard).items():
                    ex, field = key.split("|", 1)
                    items.setdefault(ex, {})[field] = tensor
        self._memory[ns] = items
        return items

    @staticmethod
    def _read_shard(shard: Path) -> dict[str, torch.Tensor]:
        """A shard's tensors, or nothing (with a warning, the shard deleted) when its bytes fail its checksum."""
        expected = shard.name.split(".")[1] if shard.name.count(".") == 2 else None
        try:
            data = shard.read_bytes()
            if expected is None or hashlib.sha256(data).hexdigest()[: len(expected)] != expected:
                raise ValueError("checksum")
            return load(data)
        except Exception:  # damaged: truncated, other bytes, an unreadable header
            log.warning("feature cache: %s is damaged; deleted, its features will be computed again", shard)
            shard.unlink(missing_ok=True)
            return {}

    def _save_shard(self, ns: str, new: dict[str, State]) -> None:
        if self.folder is None or not new:
            return
        folder = self.folder / ns
        folder.mkdir(parents=True, exist_ok=True)
        flat = {f"{ex}|{field}": t.contiguous() for ex, state in new.items() for field, t in state.items()}
        name = hashlib.sha1("".join(sorted(new)).encode()).hexdigest()[:16]
        data = save(flat)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{name}.{hashlib.sha256(data).hexdigest()[:32]}.safetensors")

    @torch.no_grad()
    def states(self, model: AdaptedModel, boundary: int, task: Task, index: Sequence[int], *,
               batch_size: int = 64, device: torch.device | None = None) -> list[State]:
        """Per-example states at ``boundary`` (pooled features when it is ``features_start``)."""
        ns = self.namespace(model, boundary)
        items = self._load_namespace(ns)
        keys = [task.example_key(int(i)) for i in index]
        todo = [(k, int(i)) for k, i in dict(zip(keys, index)).items() if k not in items]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            log.info("computing %d frozen-bottom states (boundary %d); %d cached", len(todo), boundary,
                     len(keys) - len(todo))
            self._compute(model, boundary, task, todo, items, ns, batch_size, device)
        return [items[k] for k in keys]

    def _compute(self, model, boundary, task, todo, items, ns, batch_size, device) -> None:
        backbone = model.backbone
        was_training = backbone.training
        backbone.eval()
        device = device or next(model.parameters()).device
        new: dict[str, State] = {}
        for s in range(0, len(todo), batch_size):
            chunk = todo[s : s + batch_size]
            raw = [task.inputs[i] for _, i in chunk]
            state = {k: v.to(device) for k, v in backbone.preprocess(raw).items()}
            if boundary == model.features_start:
                per_example = [{"features": f} for f in backbone.forward_features(state).cpu()]
            else:
                out = backbone.run_blocks(state, 0, boundary)
                per_example = backbone.split_state({k: v.cpu() for k, v in out.items()})
            for (key, _), st in zip(chunk, per_example):
                new[key] = {k: v.clone() for k, v in st.items()}
        items.update(new)
        self._save_shard(ns, new)
        backbone.train(was_training)
