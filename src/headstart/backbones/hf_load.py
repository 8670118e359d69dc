"""``hf:<repo id>[@revision]`` or ``hf:<folder>``: load any supported Hugging Face encoder, text or image, safely.

- **What**: the config's ``model_type`` picks the backbone: a text family (``hf_families.py``) with its
  tokenizer and sentence-transformers pooling, or an image family (``hf_vision_families.py``) with its image
  processor. Any other type is one sentence naming it and the families that work.
- **Safely**: weights are read from safetensors only (a pickle file can run code when loaded); a checkpoint
  that has only ``pytorch_model.bin`` gets one sentence. ``trust_remote_code`` is never set: a repo whose
  model is defined by its own Python files is refused.
- **Pinned**: a hub id loads one commit. ``pin`` resolves ``hf:org/model`` (or a branch or tag after ``@``)
  to ``hf:org/model@<commit>`` once, before a race or a fit, so every run and the saved model use that
  commit, and a race's run keys change when the repo does. A local folder and the packaged backbones are
  not pinned (their keys are unchanged).
- **Offline**: a local folder never asks a hub; a hub id that is neither in the HF cache nor reachable gets
  one sentence with what to do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import HeadstartError
from .base import Backbone
from .registry import BackboneSpec, register_backbone

__all__ = ["HubRef", "load_hf", "parse_ref", "pin"]

_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


@dataclass(frozen=True)
class HubRef:
    """Where an ``hf:`` argument points: a local folder, or a hub repo at a revision (None: its default branch)."""

    path: str
    revision: str | None = None
    local: bool = False

    @property
    def pinned(self) -> bool:
        return self.local or bool(self.revision and _COMMIT.fullmatch(self.revision))

    def where(self) -> str:
        return "local folder" if self.local else "Hugging Face hub" + (f" @ {self.revision}" if self.revision else "")


def parse_ref(arg: str) -> HubRef:
    """``arg`` (what follows ``hf:``) as a folder or ``repo[@revision]``; one sentence when it is neither."""
    if os.path.isdir(arg):
        return HubRef(arg, local=True)
    repo, at, revision = arg.partition("@")
    looks_local = arg.startswith((".", "/", "~")) or os.sep in arg.replace("/", "", 1)
    if looks_local or not _REPO.fullmatch(repo) or (at and not revision):
        raise HeadstartError(f"hf:{arg} is neither a folder that exists nor a hub id like org/model or "
                             "org/model@<commit>; give a save_pretrained folder or a repo id.")
    return HubRef(repo, revision or None)


def _options(ref: HubRef) -> dict[str, Any]:
    # A local folder never asks a hub, without touching the process's HF_HUB_OFFLINE (a user's own loads).
    return {"local_files_only": True} if ref.local else {"revision": ref.revision}


def _explain(ref: HubRef, exc: Exception) -> HeadstartError:
    text = str(exc)
    name = f"hf:{ref.path}" + (f"@{ref.revision}" if ref.revision else "")
    if "trust_remote_code" in text or "custom code" in text:
        why = ("its model is defined by Python files in the repo, which headstart never runs (trust_remote_code); "
               "use a checkpoint of a family transformers ships")
    elif "safetensors" in text and ("cannot be loaded" in text or "no file named" in text):
        why = ("it has only pickle weights (pytorch_model.bin), which can run code when loaded, and headstart reads "
               "safetensors only; choose a revision with model.safetensors, or load it yourself once and "
               "save_pretrained it to a folder (that writes safetensors)")
    elif ref.local:
        why = "the folder needs config.json, model.safetensors and the tokenizer or image-processor files"
    elif "revision" in text.lower() or "not a valid git identifier" in text:
        why = f"{ref.revision!r} is not a branch, tag or commit of that repo"
    else:
        why = ("no model hub is reachable and it is not in the Hugging Face cache (or no such repo exists); pass "
               "a local folder saved with save_pretrained, or use a packaged backbone (`headstart backbones`); "
               "HF_HUB_OFFLINE=1 skips the hub's retries")
    return HeadstartError(f"Could not load {name}: {why}. ({type(exc).__name__}: {text.splitlines()[0][:200]})")


def load_config(ref: HubRef) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref.path, trust_remote_code=False, **_options(ref))
    except (OSError, ValueError, KeyError) as exc:
        raise _explain(ref, exc) from None


def _commit(ref: HubRef) -> str | None:
    """The commit ``ref``'s revision resolves to: where the cache (or the hub, when reachable) keeps its config."""
    from transformers.utils.hub import cached_file, extract_commit_hash

    try:
        path = cached_file(ref.path, "config.json", **_options(ref))
    except (OSError, ValueError) as exc:
        raise _explain(ref, exc) from None
    return extract_commit_hash(path, None)


def pin(name: Any) -> Any:
    """``hf:<hub id>[@branch or tag]`` as ``hf:<hub id>@<commit>`` (the commit the cache or hub resolves it to);
    any other name, a folder or an object, unchanged."""
    if not isinstance(name, str) or not name.startswith("hf:"):
        return name
    ref = parse_ref(name[3:])
    if ref.pinned:
        return name
    commit = _commit(ref)
    return f"hf:{ref.path}@{commit}" if commit else name


def _clip_tokenizer(ref: HubRef) -> Any:
    """A CLIP checkpoint's tokenizer (for zero-shot prompts), or None when the checkpoint has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ref.path, **_options(ref))
    except (OSError, ValueError, TypeError):
        return None


def load_hf(arg: str, *, pretrained: bool, max_length: int | None = None, image_size: int | None = None) -> Backbone:
    """The backbone for ``hf:<arg>``: text or image by the checkpoint's ``model_type``."""
    from transformers import AutoModel

    from .hf_families import supported_types
    from .hf_vision_families import vision_types

    ref = parse_ref(arg)
    name = f"hf:{arg}"
    config = load_config(ref)
    kind = getattr(config, "model_type", "")
    image, text = kind in vision_types(), kind in supported_types()
    if not (image or text):
        raise HeadstartError(f"{name}: the {kind!r} family is not supported (headstart runs an encoder block by "
                             f"block and knows how to for text: {', '.join(supported_types())}; images: "
                             f"{', '.join(vision_types())}); use one of those.")
    wrong = ("--max-length", max_length) if image else ("--image-size", image_size)
    if wrong[1] is not None:
        takes = "takes no size option (its image processor sets the size)" if image else "takes --max-length"
        raise HeadstartError(f"The option {wrong[0]} does not apply to {name}, a{'n image' if image else ' text'} "
                             f"backbone; it {takes}.")
    commit = None if ref.local else ref.revision if ref.pinned else _commit(ref)
    source = f"Hugging Face hub @ {commit}" if commit else ref.where()
    try:
        if pretrained:
            model = AutoModel.from_pretrained(ref.path, use_safetensors=True, trust_remote_code=False,
                                              **_options(ref))
        else:
            model = AutoModel.from_config(config)
        if image:
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(ref.path, backend="pil", **_options(ref))
            tokenizer = _clip_tokenizer(ref) if kind == "clip" else None
        else:
            from transformers import AutoTokenizer

            processor = AutoTokenizer.from_pretrained(ref.path, **_options(ref))
    except (OSError, ValueError) as exc:
        raise _explain(ref, exc) from None
    if image:
        from .hf_vision import HFVisionBackbone

        return HFVisionBackbone(model, processor, name=name, pretrained=pretrained, source=source, tokenizer=tokenizer)
    from .st_pooling import sentence_pooling
    from .text import HFTextBackbone

    pooling, normalize = sentence_pooling(ref.path, name=name, local=ref.local, revision=ref.revision)
    return HFTextBackbone(model, processor, name=name, pretrained=pretrained, source=source, pooling=pooling,
                          normalize=normalize, max_length=max_length)


def build_hf(arg: str, pretrained: bool = True, max_length: int | None = None,
             image_size: int | None = None) -> Backbone:
    return load_hf(arg, pretrained=pretrained, max_length=max_length, image_size=image_size)


def _tiny(pretrained: bool) -> Backbone:
    from .text import build_tiny_text

    return build_tiny_text(pretrained, "hf:tiny", False)


register_backbone(BackboneSpec(
    "hf:", "text or image", "Hugging Face hub or local folder", "varies", build_hf, _tiny,
    lambda: "if the id is in the HF cache or a local folder", prefix=True))
