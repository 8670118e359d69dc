"""Backbone options (``--max-length``, ``--image-size``, ``weights``): declared once, checked before a build.

Which options a backbone takes is read from its registered builder's signature, so a new backbone
declares its options by accepting them; their ranges live here. An option the chosen backbone does
not take (``--image-size`` with a text encoder) is one sentence naming the backbone and what it takes,
never a ``TypeError`` from deep inside the builder.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..declare import check_value
from ..errors import HeadstartError

__all__ = ["BACKBONE_OPTIONS", "candidate_label", "check_backbone_options", "parse_candidate"]

#: name -> (flag, check_value keywords): what each option accepts
BACKBONE_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    # [CLS] and [SEP] take two tokens; the encoder's own position limit is checked when it is built
    "max_length": ("--max-length", {"low": 2, "integer": True, "optional": True, "example": 128}),
    # the conv nets' total stride: below 32 px the last feature map is smaller than one pixel
    "image_size": ("--image-size", {"low": 32, "high": 1024, "integer": True, "optional": True, "example": 128}),
}


def _takes(build: Any, prefix: bool) -> list[str]:
    params = list(inspect.signature(build).parameters.values())[1 if prefix else 0:]
    return [p.name for p in params if p.name != "pretrained" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_backbone_options(name: str, options: dict[str, Any] | None, *, flags: bool = False) -> dict[str, Any]:
    """``options`` if backbone ``name`` takes each of them with an allowed value, else one sentence. ``flags``:
    name them as the command line spells them (``--image-size``)."""
    from .registry import get_spec

    options = dict(options or {})
    if not isinstance(name, str):  # a Backbone instance or a factory: its own builder checks
        return options
    spec, _ = get_spec(name)
    takes = _takes(spec.build, spec.prefix)
    for key, value in options.items():
        flag = BACKBONE_OPTIONS.get(key, (f"--{key.replace('_', '-')}", {}))[0]
        shown = flag if flags else repr(key)
        if key not in takes:
            named = [BACKBONE_OPTIONS[t][0] for t in takes if t in BACKBONE_OPTIONS] if flags else takes
            what = f"it takes {', '.join(named)}" if named else "it takes none"
            article = "an" if spec.modality[0] in "aeiou" else "a"
            raise HeadstartError(f"The option {shown} does not apply to {name}, {article} {spec.modality} backbone; "
                                 f"{what}.")
        if key in BACKBONE_OPTIONS:
            check_value(key, value, f"backbone {name}", flag=flag if flags else None, **BACKBONE_OPTIONS[key][1])
    return options


def parse_candidate(text: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name[option=value,...]`` (``mobilenetv2[image_size=64]``) as (name, backbone options)."""
    text = text.strip()
    name, options = text, {}
    if text.endswith("]") and "[" in text:
        name, _, inside = text[:-1].partition("[")
        for part in filter(None, (p.strip() for p in inside.split(","))):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise HeadstartError(f"{text!r}: backbone options are key=value, e.g. mobilenetv2[image_size=64].")
            value = value.strip()
            options[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    if not name:
        raise HeadstartError(f"{text!r} is not a backbone; give names like minilm-l6, hf:org/model or "
                             "mobilenetv2[image_size=64].")
    return name, check_backbone_options(name, options)


def candidate_label(name: str, options: dict[str, Any]) -> str:
    """The label ``parse_candidate`` reads back: ``name``, or ``name[key=value,...]`` with the keys sorted."""
    inside = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{name}[{inside}]" if inside else name
