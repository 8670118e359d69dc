"""A sentence-transformers checkpoint's own pooling, read from its files, so an ``hf:`` embedding equals the library's.

A sentence-transformers repo (or ``save_pretrained`` folder) lists its modules in ``modules.json``: the
transformer, then ``Pooling`` (whose ``config.json`` says CLS, mean or max over tokens) and, often,
``Normalize`` (unit length). A plain transformers checkpoint has neither file: headstart mean-pools it,
without normalising, the most common sentence-embedding recipe. The files are read the way transformers
reads any file of a checkpoint (``cached_file``: a local folder, the HF cache, or the hub when reachable);
sentence-transformers itself is not needed.

A module headstart does not run (a ``Dense`` projection after pooling, a weighted-mean or last-token
pooling, two poolings combined) is refused in one sentence: the embedding would silently differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import HeadstartError

__all__ = ["POOLINGS", "sentence_pooling"]

POOLINGS = ("mean", "cls", "max")
#: sentence-transformers' Pooling config keys -> headstart's pooling
_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
_UNSUPPORTED = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
_TRANSFORMER = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Transformer.Transformer")
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _cached_reader(path_or_id: str, local: bool, revision: str | None) -> Callable[[str], str | None]:
    from transformers.utils import cached_file

    def read(filename: str) -> str | None:
        path = cached_file(path_or_id, filename, local_files_only=local, revision=revision,
                           _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        if path is None:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()

    return read


def _json(text: str, where: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HeadstartError(f"{name}: {where} is damaged ({exc.msg} at line {exc.lineno}); download the checkpoint "
                             "again or fix the file.") from None


def sentence_pooling(path_or_id: str, *, name: str, local: bool = False, revision: str | None = None,
                     read: Callable[[str], str | None] | None = None) -> tuple[str, bool]:
    """``(pooling, normalize)`` of a checkpoint: its sentence-transformers config, or ``("mean", False)``."""
    read = read or _cached_reader(path_or_id, local, revision)
    modules_text = read("modules.json")
    if modules_text is None:
        return "mean", False
    modules = _json(modules_text, "modules.json", name)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise HeadstartError(f"{name}: modules.json is not a sentence-transformers module list; download the "
                             "checkpoint again or remove the file.")
    kinds = [m["type"] for m in modules]
    other = [k for k in kinds if k not in (*_TRANSFORMER, _POOLING, _NORMALIZE)]
    if other:
        raise HeadstartError(f"{name}: its sentence-transformers pipeline has a {other[0].rsplit('.', 1)[-1]} module "
                             "that headstart does not run (it runs the transformer, its pooling and normalisation); "
                             "its embedding would differ from the library's: use a checkpoint without it.")
    normalize = _NORMALIZE in kinds
    pooling_modules = [m for m in modules if m["type"] == _POOLING]
    if not pooling_modules:
        return "mean", normalize
    folder = str(pooling_modules[0].get("path") or "").strip("/")
    where = f"{folder}/config.json" if folder else "config.json"
    config_text = read(where)
    if config_text is None:
        raise HeadstartError(f"{name}: modules.json names a Pooling module but {where} is missing; download the "
                             "checkpoint again.")
    config = _json(config_text, where, name)
    odd = [k for k in _UNSUPPORTED if config.get(k)]
    if odd:
        raise HeadstartError(f"{name}: its pooling ({odd[0].removeprefix('pooling_mode_')}) is not one headstart "
                             f"runs ({', '.join(POOLINGS)}); use a checkpoint that pools one of those ways.")
    modes = [mode for key, mode in _MODES.items() if config.get(key)]
    if len(modes) != 1:
        what = "combines " + " and ".join(modes) if modes else "names no pooling mode"
        raise HeadstartError(f"{name}: {where} {what}; headstart pools one way ({', '.join(POOLINGS)}): use a "
                             "checkpoint with one pooling mode.")
    return modes[0], normalize
