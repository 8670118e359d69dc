"""Save and load adapted models: only what changed, in safetensors (no pickle), plus a JSON config.

A saved folder holds ``adapter.safetensors`` (the head, the trained blocks, or only the LoRA
matrices) and ``adapter.json`` (strategy, training config, classes, the run's record, and the
backbone's identity: its name, a hash of its preprocessing by content and a checksum of its starting
weights, never a local path, so a model folder moves between machines). Both files carry checksums
checked on load, and both are written atomically. Loading rebuilds the backbone through the public
constructors, checks that it is the same one, applies the strategy's structural changes and then the
saved tensors; a damaged, truncated or incomplete folder is one sentence, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .backbones import resolve_backbone
from .errors import HeadstartError
from .fetch import sha256_file
from .memory import MEMORY_FILES, load_memory, save_memory
from .strategies import create_strategy, prepare_model
from .train import AdaptedModel, FitResult, TrainConfig

if TYPE_CHECKING:
    from .adapter import Adapter

__all__ = ["check_backbone", "check_versions", "fill_adapter", "load_adapter", "read_config", "read_tensors",
           "resolve_saved_backbone", "save_adapter"]

FORMAT = 2  # 2: checksums of the weights and the config; saved tensor names; portable backbone identity
WEIGHTS, CONFIG = "adapter.safetensors", "adapter.json"


def _saved_tensors(adapter: Adapter) -> dict[str, torch.Tensor]:
    model, strategy = adapter.model_, adapter.strategy_
    merged = getattr(adapter, "merged_", False)  # LoRA folded into the weights: the trained blocks in full
    trained = {i for stage in strategy.stages() for i in stage.plan(model.n_blocks).block_scales}
    keep_blocks = {f"backbone.blocks.{i}." for i in trained} if strategy.pretrained else {
        "backbone."}  # a random init is not reproducible across versions: keep every weight
    out = {}
    for key, tensor in model.state_dict().items():
        if key.startswith(("head.", "heads.")) or (any(key.startswith(p) for p in keep_blocks)
                                       and (merged or strategy.save_filter(key))):
            out[key] = tensor.detach().cpu().contiguous()
    return out


def _deduplicated(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """One copy of every tensor that several names share (safetensors refuses shared memory): (the unique tensors,
    alias name -> the name stored)."""
    first: dict[tuple, str] = {}
    unique, aliases = {}, {}
    for key in sorted(tensors):
        t = tensors[key]
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and ident in first:
            aliases[key] = first[ident]
        else:
            first[ident] = key
            unique[key] = t
    return unique, aliases


def _checksum(config: dict[str, Any]) -> str:
    body = {k: v for k, v in config.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_atomic(path: Path, write: Any) -> None:
    """``write(tmp)`` then rename: a crash never leaves a half-written file under the real name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_adapter(adapter: Adapter, folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise HeadstartError(f"{folder} is a file; save into a folder (it is created if missing).")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = _saved_tensors(adapter)
    unique, aliases = _deduplicated(tensors)
    backbone = getattr(adapter, "backbone_name_", None)  # a hub id with the commit it was trained from
    backbone = backbone or (adapter.backbone if isinstance(adapter.backbone, str) else None)
    _write_atomic(folder / WEIGHTS, lambda tmp: save_file(unique, str(tmp), metadata={"format": str(FORMAT)}))
    memory = getattr(adapter, "memory_", None)
    for stale in MEMORY_FILES.values():  # a folder saved again keeps no earlier model's buffer
        (folder / stale).unlink(missing_ok=True)
    memory_info = save_memory(memory, folder) if memory is not None else None
    config = {
        "format": FORMAT, "headstart": __version__,
        "backbone": {**adapter.backbone_identity_, "registered_name": backbone,
                     "options": adapter.backbone_options},
        "strategy": {"spec": adapter.strategy_.spec, "options": adapter.strategy_.options(),
                     "versions": [s.behaviour_version for s in adapter.strategy_.stages()]},
        "merged_lora": bool(getattr(adapter, "merged_", False)),
        "train_config": adapter.config_.to_dict(),
        "classes": adapter.classes_.tolist(), "modality": adapter.modality_,
        "heads": getattr(adapter, "heads_", {}),  # earlier tasks' heads (warm_start on new classes): name -> classes
        "saved_tensors": sorted(tensors), "saved_parameters": int(sum(t.numel() for t in unique.values())),
        **({"aliases": aliases} if aliases else {}),  # tensors shared by several layers (VeRA's projections)
        "weights_sha256": sha256_file(folder / WEIGHTS),
        **({"memory": memory_info} if memory_info else {}),  # the rehearsal buffer (replay=N), checksummed
        "result": adapter.result_.to_dict(),
    }
    config["checksum"] = _checksum(config)
    text = json.dumps(config, indent=2) + "\n"
    _write_atomic(folder / CONFIG, lambda tmp: tmp.write_text(text, encoding="utf-8"))  # written last: the commit
    return folder


def _damaged(folder: Path, what: str) -> HeadstartError:
    return HeadstartError(f"{folder} is damaged ({what}); save the model again, or restore the folder from a copy.")


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not folder.is_dir():
        raise HeadstartError(f"{folder} is not a folder; give the folder that `headstart fit --out` (or save) wrote.")
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise HeadstartError(f"{folder} is not a saved headstart model (needs {CONFIG} and {WEIGHTS}).")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _damaged(folder, f"{CONFIG} is not valid JSON") from None
    if not isinstance(config, dict):
        raise _damaged(folder, f"{CONFIG} is not a JSON object")
    if config.get("format") != FORMAT:
        raise HeadstartError(f"{folder} was saved in format {config.get('format')}; this headstart reads {FORMAT}. "
                             "Fit and save it again with this version.")
    if config.get("checksum") != _checksum(config):
        raise _damaged(folder, f"{CONFIG} does not match its checksum")
    if sha256_file(folder / WEIGHTS) != config["weights_sha256"]:
        raise _damaged(folder, f"{WEIGHTS} does not match the checksum in {CONFIG}")
    return config


def resolve_saved_backbone(folder: Path, config: dict[str, Any],
                           backbone_arg: Any = None) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(the name or builder to load with, the strategy, the backbone rebuilt and checked to be the one it was saved
    for, its identity); one sentence when it is another."""
    saved = config["backbone"]
    options = saved.get("options") or {}
    strategy = create_strategy(config["strategy"]["spec"], **config["strategy"]["options"])
    if backbone_arg is None and saved.get("registered_name") is None:
        raise HeadstartError(f"{folder} was trained on a custom backbone ({saved['name']}); pass it again: "
                             "Adapter.load(folder, backbone=...).")
    check_versions(folder, config, strategy)
    name = backbone_arg if backbone_arg is not None else saved["registered_name"]
    backbone = resolve_backbone(name, strategy.pretrained, **options)
    identity = backbone.identity()
    check_backbone(folder, config, identity, strategy.pretrained)
    return name, strategy, backbone, identity


def check_versions(folder: Path, config: dict[str, Any], strategy: Any) -> None:
    """The strategy's stages are the versions that saved ``folder`` (a method whose algorithm changed is refused)."""
    versions = [s.behaviour_version for s in strategy.stages()]
    saved = config["strategy"].get("versions", [1] * len(versions))  # saved before versions were kept: all were 1
    if saved != versions:
        raise HeadstartError(f"{folder} was saved by {strategy.spec} version {saved}, and this headstart's "
                             f"{strategy.spec} is version {versions}: its tensors may mean something else now; fit "
                             "it again with this version.")


def check_backbone(folder: Path, config: dict[str, Any], identity: dict[str, Any], pretrained: bool) -> None:
    """The backbone ``identity`` is the one ``config`` was saved for (name, preprocessing, starting weights)."""
    saved = config["backbone"]
    checks = ["name", "preprocess"] + (["weights"] if pretrained else [])
    checks += ["pooling"] if "pooling" in saved else []  # saved models from before poolings were recorded have none
    wrong = [k for k in checks if identity.get(k) != saved[k]]
    if wrong:
        raise HeadstartError(
            f"{folder} was saved for backbone {saved['name']} ({', '.join(f'{k}={saved[k]}' for k in wrong)}) "
            f"but this backbone has {', '.join(f'{k}={identity.get(k)}' for k in wrong)}: load it onto the backbone "
            "it was trained on."
        )


def read_tensors(folder: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The saved tensors, every one the config lists (a missing one: the folder is damaged)."""
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise _damaged(folder, f"{WEIGHTS} cannot be read: {type(exc).__name__}") from None
    for alias, stored in (config.get("aliases") or {}).items():
        if stored in tensors:
            tensors[alias] = tensors[stored]
    missing = sorted(set(config["saved_tensors"]) - set(tensors))
    if missing:
        raise _damaged(folder, f"{len(missing)} tensors missing from {WEIGHTS}, e.g. {missing[0]}")
    return tensors


def fill_adapter(adapter: Adapter, folder: Path, config: dict[str, Any], model: AdaptedModel, strategy: Any,
                 identity: dict[str, Any]) -> Adapter:
    """Set a loaded adapter's fitted state from its folder's config."""
    adapter.model_, adapter.strategy_ = model.eval(), strategy
    adapter.config_ = TrainConfig(**config["train_config"])
    adapter.classes_ = np.asarray(config["classes"])
    adapter.modality_ = config["modality"]
    adapter.backbone_identity_ = identity
    adapter.saved_config_ = config
    adapter.merged_ = bool(config.get("merged_lora"))
    adapter.heads_ = config.get("heads") or {}
    adapter.result_ = FitResult.from_dict(config["result"])  # how it was trained: kept when saved again
    if config.get("memory"):
        adapter.memory_ = load_memory(folder, config["memory"], tuple(str(c) for c in config["classes"]),
                                      config["modality"])
    model.fitted = True
    return adapter


def load_adapter(cls: type[Adapter], folder: Path, backbone_arg: Any = None) -> Adapter:
    config = read_config(folder)
    name, strategy, backbone, identity = resolve_saved_backbone(folder, config, backbone_arg)
    model = AdaptedModel(backbone, len(config["classes"]))
    heads = config.get("heads") or {}
    for head, classes in heads.items():
        model.heads[head] = torch.nn.Linear(backbone.feature_dim, len(classes))
    if not config.get("merged_lora"):  # a merged LoRA model is the plain architecture with its updated weights
        prepare_model(model, strategy)
    tensors = read_tensors(folder, config)
    expected = model.state_dict()
    stray = [k for k in tensors if k not in expected or expected[k].shape != tensors[k].shape]
    if stray:
        raise HeadstartError(f"{folder}: {len(stray)} saved tensors do not fit this model (e.g. {stray[0]}).")
    model.load_state_dict(tensors, strict=False)
    options = config["backbone"].get("options") or {}
    adapter = cls(name, strategy, backbone_options=options, **config["train_config"])
    return fill_adapter(adapter, folder, config, model, strategy, identity)
