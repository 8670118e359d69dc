"""The rehearsal buffer of a model that learns tasks one after another (``Adapter(replay=N)``).

After a fit with ``replay=N`` the model keeps up to N labelled examples of every class it has learned:
for each class, N drawn (seeded) from that class's examples in the buffer and in the fit's own
examples together, so a class of an earlier task keeps its examples and a class that returns in a later
task (domain-incremental learning) mixes old and new ones. When the model is fitted on the next task,
the buffer's examples train beside the new ones (Rebuffi et al.'s rehearsal, class-balanced) and the
buffer is refreshed. It is saved with the model, so ``headstart fit --from`` rehearses too: texts in
``memory.json``, images as uint8 arrays in ``memory.safetensors`` (an image given as a path is read
once, so the folder does not depend on files elsewhere), both checksummed in the model's config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Task
from .errors import HeadstartError
from .fetch import sha256_file

__all__ = ["MEMORY_FILES", "load_memory", "refresh_memory", "save_memory"]

MEMORY_FILES = {"text": "memory.json", "image": "memory.safetensors"}


def refresh_memory(memory: Task | None, learned: Task, per_class: int, seed: int) -> Task:
    """Up to ``per_class`` examples of every class of ``learned`` (whose classes include the buffer's), drawn from
    the buffer's and ``learned``'s examples of that class together."""
    rng = np.random.default_rng([seed, per_class, len(learned)])
    pools: dict[int, list[tuple[Any, int]]] = {}
    if memory is not None:
        index = {c: i for i, c in enumerate(learned.classes)}
        for x, y in zip(memory.inputs, memory.labels):
            pools.setdefault(index[memory.classes[int(y)]], []).append((x, 0))
    for x, y in zip(learned.inputs, learned.labels):
        pools.setdefault(int(y), []).append((x, 1))
    inputs, labels = [], []
    for label in sorted(pools):
        pool = pools[label]
        keep = sorted(rng.choice(len(pool), size=min(per_class, len(pool)), replace=False).tolist())
        inputs += [pool[i][0] for i in keep]
        labels += [label] * len(keep)
    if learned.modality == "image":
        inputs = [_array(x) for x in inputs]
    return Task(inputs, np.asarray(labels, dtype=np.int64), learned.classes, learned.modality, "memory", "memory")


def _array(item: Any) -> np.ndarray:
    """An image input as the uint8 array the model reads (a path is read once)."""
    from .imaging import to_pil

    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item
    return np.asarray(to_pil(item))


def save_memory(memory: Task, folder: Path) -> dict[str, Any]:
    """Write the buffer into ``folder``; returns what the model's config records (file, sha256, bytes, counts)."""
    from safetensors.torch import save_file

    path = folder / MEMORY_FILES[memory.modality]
    tmp = path.with_name(f".{path.name}.tmp")
    labels = [memory.classes[int(y)] for y in memory.labels]
    if memory.modality == "text":
        tmp.write_text(json.dumps({"inputs": list(memory.inputs), "labels": labels}) + "\n", encoding="utf-8")
    else:
        save_file({f"{i}": torch.from_numpy(np.ascontiguousarray(x)) for i, x in enumerate(memory.inputs)}, str(tmp),
                  metadata={"labels": json.dumps(labels)})
    tmp.replace(path)
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size, "examples": len(memory),
            "per_class": memory.counts()}


def load_memory(folder: Path, info: dict[str, Any], classes: tuple[str, ...], modality: str) -> Task:
    """The buffer a saved model keeps, checked against its recorded checksum."""
    path = folder / info["file"]
    if not path.is_file() or sha256_file(path) != info["sha256"]:
        raise HeadstartError(f"{folder} is damaged ({info['file']}, its rehearsal buffer, is missing or does not "
                             "match its checksum); save the model again, or restore the folder from a copy.")
    if modality == "text":
        data = json.loads(path.read_text(encoding="utf-8"))
        inputs, labels = data["inputs"], data["labels"]
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            labels = json.loads(f.metadata()["labels"])
            inputs = [f.get_tensor(f"{i}").numpy() for i in range(len(labels))]
    index = {c: i for i, c in enumerate(classes)}
    return Task(inputs, np.asarray([index[y] for y in labels], dtype=np.int64), classes, modality, "memory", "memory")
