"""The backbone registry: ``register_backbone(...)`` one line per entry, ``create_backbone`` to build one.

Each entry knows how to build the real model (pretrained or its random-init twin), a *tiny* version
of the same architecture for fast tests, whether its weights are available offline right now, and
which package they come from. Names with a prefix (``hf:<repo or dir>``) are resolved by the entry
registered for that prefix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import HeadstartError
from .base import Backbone, Modality

__all__ = ["BackboneSpec", "create_backbone", "get_spec", "list_backbones", "register_backbone", "resolve_backbone"]


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry.

    ``build(pretrained, **options)`` returns the backbone; ``build_tiny(pretrained)`` the same
    architecture scaled down (used by tests parametrised over the registry). ``offline_status()``
    says whether the weights can be loaded right now without any network ("cached", "installed") or
    what fetching them takes.
    """

    name: str
    modality: Modality | str  # "text", "image", or "text or image" for an entry whose argument decides
    source: str
    params: str
    build: Callable[..., Backbone]
    build_tiny: Callable[[bool], Backbone]
    offline_status: Callable[[], str]
    fetch: Callable[[], Any] | None = None
    prefix: bool = False  # True for "hf:" style entries whose name is followed by an argument


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise HeadstartError(f"A backbone named {spec.name!r} is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Registered names, in registration order (prefix entries end with ``:``)."""
    _ensure_builtin()
    return list(_REGISTRY)


def get_spec(name: str) -> tuple[BackboneSpec, str | None]:
    """The entry for ``name`` and, for prefix entries, the argument after the prefix."""
    _ensure_builtin()
    if name in _REGISTRY and not _REGISTRY[name].prefix:
        return _REGISTRY[name], None
    for key, spec in _REGISTRY.items():
        if spec.prefix and name.startswith(key) and len(name) > len(key):
            return spec, name[len(key):]
    valid = ", ".join(k + ("<repo id or local dir>" if s.prefix else "") for k, s in _REGISTRY.items())
    raise HeadstartError(f"Unknown backbone {name!r}. Valid backbones: {valid}.")


def create_backbone(name: str, pretrained: bool = True, **options: Any) -> Backbone:
    """Build a registered backbone.

    ``pretrained=False`` gives the random-init twin: the same architecture and preprocessing with
    fresh weights, the from-scratch baseline. ``options`` are backbone-specific (``image_size`` for
    vision, ``max_length`` for text, ``weights`` for a local checkpoint file).
    """
    from .options import check_backbone_options

    spec, arg = get_spec(name)
    check_backbone_options(name, options)
    if spec.prefix:
        return spec.build(arg, pretrained=pretrained, **options)
    return spec.build(pretrained=pretrained, **options)


def resolve_backbone(backbone: Any, pretrained: bool = True, **options: Any) -> Backbone:
    """A backbone from what a user passes: a registered name, a ``Backbone`` (copied, so training never
    changes the caller's model), or a callable ``pretrained -> Backbone``."""
    import copy

    if isinstance(backbone, str):
        return create_backbone(backbone, pretrained=pretrained, **options)
    if isinstance(backbone, Backbone):
        if not pretrained:
            raise HeadstartError("The from-scratch baseline needs a fresh random init: pass the backbone by name or "
                                 "as a callable `pretrained -> Backbone`, not as an instance.")
        return copy.deepcopy(backbone)
    if callable(backbone):
        return backbone(pretrained)
    raise HeadstartError(f"backbone must be a name, a Backbone or a callable; got {type(backbone).__name__}.")


def _ensure_builtin() -> None:
    # Import for the side effect of registering the built-in entries (one line each, in their modules).
    for module in ("text", "hf_load", "mobilenetv2", "efficientnet"):
        importlib.import_module(f"{__package__}.{module}")
