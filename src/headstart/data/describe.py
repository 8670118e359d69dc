"""``describe``: what a user should know about a dataset before adapting a model to it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..errors import HeadstartError
from .readers import image_size
from .splits import make_splits
from .task import Task

__all__ = ["describe", "format_description"]


def _stats(values: list[int]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"min": int(arr.min()), "median": float(np.median(arr)), "mean": round(float(arr.mean()), 1),
            "max": int(arr.max())}


def describe(task: Task, *, seed: int = 0, max_images: int = 2000) -> dict[str, Any]:
    """Counts per class, lengths or image sizes, and exact duplicates within and across the default splits."""
    out: dict[str, Any] = {"name": task.name, "source": task.source, "modality": task.modality,
                           "examples": len(task), "classes": len(task.classes), "per_class": task.counts(),
                           "notes": list(task.notes)}
    if task.modality == "text":
        out["characters"] = _stats([len(t) for t in task.inputs])
        out["words"] = _stats([len(t.split()) for t in task.inputs])
    else:
        sizes, unreadable = [], []
        for i in range(min(len(task), max_images)):
            try:
                sizes.append(image_size(task.inputs[i]))
            except HeadstartError:
                unreadable.append(str(task.inputs[i]))
        out["unreadable_images"] = unreadable
        counts: dict[str, int] = defaultdict(int)
        for w, h in sizes:
            counts[f"{w}x{h}"] += 1
        out["image_sizes"] = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])
        out["image_sizes_sampled"] = len(sizes)

    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(len(task)):
        groups[task.example_key(i)].append(i)
    dups = [g for g in groups.values() if len(g) > 1]
    conflicting = [g for g in dups if len(set(task.labels[g].tolist())) > 1]
    out["duplicates"] = {"groups": len(dups), "extra_copies": sum(len(g) - 1 for g in dups),
                         "with_conflicting_labels": len(conflicting)}
    try:
        splits = make_splits(task, seed=seed)
    except ValueError as exc:  # too few examples for a split: describe still answers
        out["splits"] = {"error": str(exc)}
        return out
    part = np.empty(len(task), dtype=object)
    for name in ("pool", "selection", "test"):
        part[getattr(splits, name)] = name
    across: dict[str, int] = defaultdict(int)
    for g in dups:
        names = sorted(set(part[g].tolist()))
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                across[f"{names[a]}~{names[b]}"] += 1
    out["splits"] = {**splits.sizes(), "seed": seed, "duplicates_across": dict(across)}
    return out


def format_description(d: dict[str, Any]) -> str:
    lines = [f"{d['name']} ({d['modality']}, from {d['source']}): {d['examples']:,} examples in {d['classes']} classes"]
    width = max(len(c) for c in d["per_class"])
    for cls, n in d["per_class"].items():
        lines.append(f"  {cls:<{width}}  {n:>7,}  ({100 * n / d['examples']:.1f}%)")
    if "words" in d:
        w, c = d["words"], d["characters"]
        lines.append(f"words per example: min {w['min']}, median {w['median']:g}, mean {w['mean']}, max {w['max']}"
                     f" (characters: median {c['median']:g}, max {c['max']})")
    else:
        sizes = ", ".join(f"{k} ×{v}" for k, v in d["image_sizes"].items())
        lines.append(f"image sizes (of {d['image_sizes_sampled']} read): {sizes}")
        if d["unreadable_images"]:
            lines.append(f"unreadable images: {len(d['unreadable_images'])} (e.g. {d['unreadable_images'][0]})")
    dup = d["duplicates"]
    lines.append(f"exact duplicates: {dup['groups']} groups, {dup['extra_copies']} extra copies, "
                 f"{dup['with_conflicting_labels']} with conflicting labels")
    s = d["splits"]
    if "error" in s:
        lines.append(f"splits: not possible: {s['error']}")
    else:
        across = ", ".join(f"{k}: {v}" for k, v in s["duplicates_across"].items()) or "none"
        lines.append(f"default split (seed {s['seed']}): pool {s['pool']:,} (label budgets draw training and "
                     f"validation from it), selection {s['selection']:,}, test {s['test']:,}; "
                     f"duplicates across splits: {across}")
    lines.extend(f"note: {n}" for n in d["notes"])
    return "\n".join(lines)
