"""Label-preserving augmentation, applied to raw inputs before preprocessing.

Images (PIL, numpy): random resized crop, horizontal flip, small rotation, colour jitter. Text: token
dropout and swaps of neighbouring words. Each takes the item and a numpy ``Generator`` (seeded by the
run), so an augmented run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from ..backbones.imaging import to_pil

__all__ = ["ImageAugment", "TextAugment", "augmenter_for"]


@dataclass(frozen=True)
class ImageAugment:
    scale: tuple[float, float] = (0.6, 1.0)  # area fraction kept by the random crop
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True  # set False where left/right carries meaning (digits, text in images)
    max_rotation: float = 10.0  # degrees
    jitter: float = 0.2  # brightness and contrast factors drawn from [1 - j, 1 + j]

    def __call__(self, item: Any, rng: np.random.Generator) -> Image.Image:
        img = to_pil(item)
        w, h = img.size
        for _ in range(10):  # torchvision's RandomResizedCrop sampling, with its fallback
            area = w * h * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img = img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BILINEAR)
                break
        if self.hflip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.max_rotation:
            img = img.rotate(float(rng.uniform(-self.max_rotation, self.max_rotation)),
                             resample=Image.Resampling.BILINEAR)
        if self.jitter:
            img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - self.jitter, 1 + self.jitter)))
            img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(1 - self.jitter, 1 + self.jitter)))
        return img


@dataclass(frozen=True)
class TextAugment:
    dropout: float = 0.1  # probability of dropping each word (never all of them)
    swap: float = 0.1  # probability, per word, of swapping it with its right neighbour

    def __call__(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        kept = [w for w in words if rng.random() >= self.dropout] or [words[int(rng.integers(len(words)))]]
        for i in range(len(kept) - 1):
            if rng.random() < self.swap:
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
        return " ".join(kept)


def augmenter_for(modality: str, **options: Any):
    return TextAugment(**options) if modality == "text" else ImageAugment(**options)
