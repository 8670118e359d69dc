"""Image loading and the eval transform, in PIL + numpy (no torch at import, no torchvision).

Deployment (``headstart.deploy``) uses this module without torch; the backbones call the transform
to get a torch batch.

Accepted inputs everywhere: a file path, a PIL image, or a numpy array (``H×W`` grey or ``H×W×C``,
``uint8`` 0–255 or float 0–1). The eval transform is torchvision's classic one: resize the shorter
side to ``size / crop_pct``, centre-crop ``size``, scale to [0, 1], normalise per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import HeadstartError

__all__ = ["ImageTransform", "image_inputs", "to_pil"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_pil(item: Any) -> Image.Image:
    """Any accepted image input to an RGB PIL image, or a clear error naming what was wrong."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, Path)):
        try:
            with Image.open(item) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise HeadstartError(f"Image file {item} does not exist.") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise HeadstartError(f"{item} is not a readable image ({exc}); remove or replace it.") from None
    if isinstance(item, np.ndarray):
        arr = item
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # channels-first to channels-last
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise HeadstartError(f"An image array must be H×W or H×W×C; got shape {item.shape}.")
        return Image.fromarray(arr).convert("RGB")
    raise HeadstartError(
        f"Expected an image (file path, PIL image or numpy array), got {type(item).__name__}; "
        "is this a text model's input?"
    )


def image_inputs(inputs: Any, model: str) -> list[Any]:
    """``inputs`` as a list of images for ``model``; a string that is not an image file (a text given to an image
    model) is one sentence naming it."""
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    for x in items:
        if isinstance(x, str) and not Path(x).is_file():
            raise HeadstartError(f"{model} is an image model but got {x[:40]!r}, which is not an "
                                 "image file; pass image files, a folder of them, or arrays.")
    return items


@dataclass(frozen=True)
class ImageTransform:
    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875

    @property
    def id(self) -> str:
        return f"img{self.size}|crop={self.crop_pct}|mean={self.mean}|std={self.std}"

    def resize_crop(self, img: Image.Image) -> Image.Image:
        short = int(round(self.size / self.crop_pct))
        w, h = img.size
        scale = short / min(w, h)
        img = img.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                         Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def to_array(self, img: Image.Image) -> np.ndarray:
        """One resized, cropped image as a normalised ``3×size×size`` float32 array."""
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def array(self, items: Sequence[Any]) -> np.ndarray:
        """A batch ``N×3×size×size`` (float32) of any accepted image inputs."""
        return np.stack([self.to_array(self.resize_crop(to_pil(x))) for x in items])

    def to_tensor(self, img: Image.Image):
        import torch

        return torch.from_numpy(self.to_array(img))

    def __call__(self, items: Sequence[Any]):
        import torch

        return torch.from_numpy(self.array(items))
