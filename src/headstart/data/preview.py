"""Small previews of examples for reports: a text's first characters, or an image's thumbnail as a data URI."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ..errors import HeadstartError
from .task import Task

__all__ = ["preview"]


def preview(task: Task, i: int, *, chars: int = 240, pixels: int = 48) -> str:
    """Example ``i`` of ``task`` as a short string: its text, or ``data:image/png;base64,...`` of a thumbnail."""
    item = task.inputs[i]
    if task.modality == "text":
        text = " ".join(str(item).split())
        return text if len(text) <= chars else text[: chars - 1] + "…"
    try:
        if isinstance(item, np.ndarray):
            array = item if item.dtype == np.uint8 else np.clip(item, 0, 255).astype(np.uint8)
            img = Image.fromarray(array.squeeze())
        else:
            with Image.open(item) as opened:
                img = opened.copy()
    except (OSError, ValueError, TypeError, HeadstartError):
        return ""
    img = img.convert("RGB")
    img.thumbnail((pixels, pixels))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
