"""One body, many adapters: saved models of one backbone, loaded onto one body and switched without reloading it.

``AdapterBank.load(["tickets/", "sentiment/", "language/"])`` builds the backbone once, checks that
every folder was saved for it (name, preprocessing, starting weights), and keeps each model's own
part beside it:

- a parameter-efficient model (``lora``, ``dora``, ``ia3``, ``ln-tuning``) is injected under its own
  adapter name through PEFT, so several LoRA adapters live in the same layers and switching is PEFT's
  ``set_adapter`` (no tensor moves); models of two different PEFT methods cannot share the layers
  and are refused in one sentence;
- a model that changed the body's own tensors (``bitfit``'s biases, ``partial:K``'s top blocks, a
  full fine-tune, a merged export) has them copied in when it becomes active and the pretrained values
  copied back when another does (the body's pretrained copy of those tensors is kept once);
- a model whose method adds modules to the blocks (``adapter``'s bottlenecks, ``prompt``'s soft prompt,
  ``prefix``'s keys and values: ``Strategy.adds``) keeps its own modules, attached to the blocks while it
  is active and detached when another is (the methods' hooks do nothing on a block without one);
- a head-only model (``probe``, ``prototype``, ``zero-shot``) only swaps its head.

``bank["tickets"]`` is that model as an ``Adapter`` (predict, predict_proba, score), made active on
each call; ``bank.predict(X)`` labels every input with every model. A model trained from scratch owns
its whole body and is refused (load it with ``Adapter.load``). Members are read-only: to train or save
one again, load its folder on its own.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .adapter import Adapter
from .errors import HeadstartError
from .paths import given_path
from .persist import check_versions, fill_adapter, read_config, read_tensors, resolve_saved_backbone
from .strategies import create_strategy
from .strategies.tuner import ParameterEfficient
from .train import AdaptedModel
from .train.delta import tuner_layers

__all__ = ["AdapterBank"]


class _Member(Adapter):
    """One model of a bank: an ``Adapter`` whose body is shared, made active before every prediction."""

    def predict_proba(self, X: Any) -> np.ndarray:
        self._bank.activate(self._bank_name)
        return super().predict_proba(X)

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise HeadstartError(f"{self._bank_name} is served from a bank that shares its body with other models; load "
                             f"its folder on its own (Adapter.load({str(self._bank_folder)!r})) to train, save, merge "
                             "or export it.")

    fit = save = merge_adapters = merge_lora = export_onnx = _read_only


def _names(folders: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """Each model's name: given, or its folder's name (made a valid adapter name, and unique)."""
    if names is not None:
        if len(names) != len(folders) or len(set(names)) != len(names):
            raise HeadstartError(f"Give one distinct name per model folder ({len(folders)} folders, names {names}).")
        raw = list(names)
    else:
        raw = [f.resolve().name or "model" for f in folders]
    out: list[str] = []
    for name in raw:
        clean = re.sub(r"\W", "_", str(name)) or "model"
        clean = f"m_{clean}" if clean[0].isdigit() else clean
        base, i = clean, 2
        while clean in out:
            clean, i = f"{base}_{i}", i + 1
        out.append(clean)
    return out


def _peft_key(key: str, prefix: str, name: str) -> str:
    """A saved key under PEFT's ``default`` adapter, renamed to the bank's adapter ``name``."""
    parts = key.split(".")
    for i in range(1, len(parts)):
        if parts[i] == "default" and prefix in parts[i - 1]:
            parts[i] = name
    return ".".join(parts)


def _body_key(key: str, state: dict[str, torch.Tensor]) -> str | None:
    """A plain layer's key in a body whose layer may now sit under a PEFT wrapper (``…query.base_layer.weight``)."""
    if key in state:
        return key
    head, _, leaf = key.rpartition(".")
    wrapped = f"{head}.base_layer.{leaf}"
    return wrapped if wrapped in state else None


class AdapterBank:
    """Several saved models of one backbone on one body; see the module's documentation."""

    def __init__(self) -> None:
        raise TypeError("Build a bank with AdapterBank.load(folders).")

    @classmethod
    def load(cls, folders: Sequence[str | Path], backbone: Any = None,
             names: Sequence[str] | None = None) -> AdapterBank:
        """Load every model folder onto one body (``backbone``: only for models of a custom backbone)."""
        if isinstance(folders, (str, Path)) or not folders:
            raise HeadstartError("Give a list of model folders (written by `headstart fit` or Adapter.save).")
        paths = [given_path(f, "A model folder") for f in folders]
        configs = [read_config(p) for p in paths]
        bank = object.__new__(cls)
        bank.names = _names(paths, names)
        _, _, body, identity = resolve_saved_backbone(paths[0], configs[0], backbone)
        strategies = [create_strategy(c["strategy"]["spec"], **c["strategy"]["options"]) for c in configs]
        bank._check_members(paths, configs, strategies, identity)
        model = AdaptedModel(body, 1)
        peft = {n: s for n, s, c in zip(bank.names, strategies, configs)
                if isinstance(s, ParameterEfficient) and not c.get("merged_lora")}
        methods = {type(s).__name__: s.spec for s in peft.values()}
        if len(methods) > 1:
            raise HeadstartError(f"Models of {' and '.join(sorted(methods.values()))} cannot share one body (their "
                                 "injected layers differ); put models of one parameter-efficient method in a bank, "
                                 "or load the others on their own.")
        if sum(s.name == "vera" for s in peft.values()) > 1:
            raise HeadstartError("Two vera models cannot share one body: each owns the random projections its layers "
                                 "share; load the others on their own.")
        targets = {name: strategy.peft_config(body) for name, strategy in peft.items()}  # before any layer is wrapped
        with warnings.catch_warnings():  # several adapters in one model is the point here, not a mistake
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            for name, strategy in peft.items():
                strategy.inject(body, adapter_name=name, config=targets[name])
        state = model.state_dict()
        bank._model, bank._base, bank._members, bank._active = model, {}, {}, None
        bank._heads, bank._body, bank._peft, bank._added = {}, {}, set(peft), {}
        bank._adapter_of = {name: name for name in peft}  # member -> the PEFT adapter its body runs (combine)
        bank._targets = {name: sorted(c.target_modules) for name, c in targets.items()}
        for name, path, config, strategy in zip(bank.names, paths, configs, strategies):
            bank._add(name, path, config, strategy, state, identity, backbone)
        for _, layer in tuner_layers(body):  # nothing active until a member is
            layer.enable_adapters(False)
        model.eval()
        return bank

    def _check_members(self, paths: list[Path], configs: list[dict[str, Any]], strategies: list[Any],
                       identity: dict[str, Any]) -> None:
        first = paths[0]
        for path, config, strategy in zip(paths, configs, strategies):
            saved = config["backbone"]
            check_versions(path, config, strategy)
            if not strategy.pretrained:
                raise HeadstartError(f"{path} was trained from scratch ({strategy.spec}): its whole body is its own, "
                                     "so it cannot share one; load it on its own with Adapter.load.")
            keys = ["name", "preprocess", "weights"] + (["pooling"] if "pooling" in saved else [])
            wrong = [k for k in keys if identity.get(k) != saved.get(k)]
            if wrong:
                raise HeadstartError(f"{path} was saved for backbone {saved['name']} ({wrong[0]} "
                                     f"{saved.get(wrong[0])}) but {first} for {identity['name']} ({wrong[0]} "
                                     f"{identity.get(wrong[0])}): a bank serves models of one backbone; load the "
                                     "others on their own.")

    def _add(self, name: str, path: Path, config: dict[str, Any], strategy: Any, state: dict[str, torch.Tensor],
             identity: dict[str, Any], backbone: Any) -> None:
        tensors = read_tensors(path, config)
        added = self._own_modules(strategy) if strategy.adds else {}
        head = nn.Linear(self._model.backbone.feature_dim, len(config["classes"]))
        heads = nn.ModuleDict({h: nn.Linear(self._model.backbone.feature_dim, len(c))
                               for h, c in (config.get("heads") or {}).items()})
        own: dict[str, torch.Tensor] = {}
        for key, tensor in tensors.items():
            if key.startswith("head."):
                target = head.get_parameter(key[len("head."):])
            elif key.startswith("heads."):
                target = heads.get_parameter(key[len("heads."):])
            else:
                target = _added_tensor(added, key, strategy.adds)
            if target is not None:
                if target.shape != tensor.shape:
                    raise HeadstartError(f"{path}: {key} does not fit this model ({tuple(tensor.shape)} saved).")
                with torch.no_grad():
                    target.copy_(tensor)
                continue
            mapped = (_peft_key(key, strategy.prefix, name) if name in self._peft else _body_key(key, state))
            if mapped is None or mapped not in state or state[mapped].shape != tensor.shape:
                raise HeadstartError(f"{path}: {key} does not fit the shared body (saved for "
                                     f"{config['strategy']['spec']}).")
            if name in self._peft:
                with torch.no_grad():
                    state[mapped].copy_(tensor)
            else:
                own[mapped] = tensor
                self._base.setdefault(mapped, state[mapped].detach().clone())
        self._heads[name] = (head.eval(), heads.eval())
        self._body[name] = own
        self._added[name] = added
        member = object.__new__(_Member)
        options = config["backbone"].get("options") or {}
        Adapter.__init__(member, backbone if backbone is not None else config["backbone"]["registered_name"],
                         strategy, backbone_options=options, **config["train_config"])
        member.feature_cache = False  # a shared body: a cache keyed on its weights would see other members' tensors
        fill_adapter(member, path, config, self._model, strategy, identity)
        member._bank, member._bank_name, member._bank_folder = self, name, path
        self._members[name] = member

    def _own_modules(self, strategy: Any) -> dict[int, nn.Module]:
        """The modules ``strategy``'s ``configure`` adds, built on the shared body and taken off it again: block index
        -> module, attached while their member is active."""
        blocks = self._model.backbone.blocks
        strategy.configure(self._model)
        modules = {i: getattr(block, strategy.adds) for i, block in enumerate(blocks) if hasattr(block, strategy.adds)}
        for i in modules:
            delattr(blocks[i], strategy.adds)
        return modules

    # -- switching -----------------------------------------------------------------------------
    def activate(self, name: str) -> None:
        """Make ``name`` the model the body computes (its tensors in, the previous one's out)."""
        if name not in self._members:
            raise HeadstartError(f"No model named {name!r} in this bank; it holds {', '.join(self.names)}.")
        if name == self._active:
            return
        state = self._model.state_dict()
        with torch.no_grad():
            if self._active is not None:
                for key in self._body[self._active]:
                    state[key].copy_(self._base[key])
            for key, tensor in self._body[name].items():
                state[key].copy_(tensor)
        blocks = self._model.backbone.blocks
        if self._active is not None:
            for i in self._added[self._active]:
                delattr(blocks[i], self._members[self._active].strategy_.adds)
        for i, module in self._added[name].items():
            blocks[i].add_module(self._members[name].strategy_.adds, module)
        for _, layer in tuner_layers(self._model.backbone):
            if name in self._peft:
                layer.enable_adapters(True)
                layer.set_adapter(self._adapter_of[name])
            else:
                layer.enable_adapters(False)
        self._model.head, self._model.heads = self._heads[name]
        self._model.eval()
        self._active = name

    # -- combining ------------------------------------------------------------------------------
    def combine(self, names: Sequence[str], weights: Sequence[float] | None = None) -> str:
        """Run the LoRA members ``names`` on one adapter whose update is the weighted sum of theirs (each keeps its
        own head); returns the combined adapter's name. ``separate()`` puts each back on its own.

        The sum is exact: PEFT's ``cat`` combination (``LoraModel.add_weighted_adapter``), rank the sum of
        the ranks, A stacked with each member's weight and scaling folded in, B side by side."""
        from peft import LoraConfig

        names, weights = list(names), [1.0] * len(names) if weights is None else [float(w) for w in weights]
        unknown = [n for n in names if n not in self._members]
        if unknown:
            raise HeadstartError(f"No model named {unknown[0]!r} in this bank; it holds {', '.join(self.names)}.")
        if len(set(names)) < 2 or len(weights) != len(names):
            raise HeadstartError(f"Combine two or more distinct members, one weight each (got {names}, {weights}).")
        specs = {n: self._members[n].strategy_.spec for n in names}
        if any(spec != "lora" for spec in specs.values()):
            other = next(n for n, spec in specs.items() if spec != "lora")
            raise HeadstartError(f"{other} is {specs[other]}: only lora adapters add up (DoRA's magnitudes, IA3's "
                                 "scales and a body's own tensors do not); combine lora members.")
        ranks = [self._members[n].strategy_.rank for n in names]
        combined = "__".join(names)
        body = self._model.backbone
        if combined not in {a for _, layer in tuner_layers(body) for a in getattr(layer, "lora_A", {})}:
            config = LoraConfig(r=sum(ranks), lora_alpha=sum(ranks), lora_dropout=0.0,  # scaling 1: folded into A
                                target_modules=self._targets[names[0]], bias="none")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self._members[names[0]].strategy_.inject(body, adapter_name=combined, config=config)
        with torch.no_grad():
            for _, layer in tuner_layers(body):
                if combined not in getattr(layer, "lora_A", {}):
                    continue
                a = torch.cat([layer.lora_A[n].weight * w * layer.scaling[n] for n, w in zip(names, weights)], dim=0)
                b = torch.cat([layer.lora_B[n].weight for n in names], dim=1)  # each member's own, never a sum
                layer.lora_A[combined].weight.copy_(a)
                layer.lora_B[combined].weight.copy_(b)
        for n in names:
            self._adapter_of[n] = combined
        self._active = None
        return combined

    def separate(self) -> None:
        """Every member back on its own adapter (undoes ``combine``)."""
        self._adapter_of = {name: name for name in self._peft}
        self._active = None

    @property
    def active(self) -> str | None:
        return self._active

    def __getitem__(self, name: str) -> Adapter:
        if name not in self._members:
            raise HeadstartError(f"No model named {name!r} in this bank; it holds {', '.join(self.names)}.")
        return self._members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def predict_proba(self, X: Any) -> dict[str, np.ndarray]:
        """Every model's class probabilities for ``X``, by model name (columns in that model's ``classes_``)."""
        return {name: self._members[name].predict_proba(X) for name in self.names}

    def predict(self, X: Any) -> dict[str, np.ndarray]:
        """Every model's labels for ``X``, by model name."""
        return {name: self._members[name].classes_[p.argmax(1)] for name, p in self.predict_proba(X).items()}

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {self._members[n].strategy_.spec}" for n in self.names)
        return f"AdapterBank({self._model.backbone.name}; {parts})"


def _added_tensor(modules: dict[int, nn.Module], key: str, adds: str | None) -> torch.Tensor | None:
    """The tensor of a member's own added module that a saved key names (``backbone.blocks.3.bottleneck.up.weight``),
    or None when the key is not one of them."""
    parts = key.split(".")
    if adds is None or len(parts) < 5 or parts[:2] != ["backbone", "blocks"] or parts[3] != adds:
        return None
    module = modules.get(int(parts[2])) if parts[2].isdigit() else None
    if module is None:
        return None
    rest = ".".join(parts[4:])
    for get in (module.get_parameter, module.get_buffer):
        try:
            return get(rest)
        except AttributeError:
            continue
    return None
