"""Backbones: one registry, one interface (``Backbone``), a random-init twin for every entry."""

from .base import Backbone, Modality, State
from .registry import BackboneSpec, create_backbone, get_spec, list_backbones, register_backbone, resolve_backbone

__all__ = ["Backbone", "BackboneSpec", "Modality", "State", "create_backbone", "get_spec", "list_backbones",
           "register_backbone", "resolve_backbone"]
