"""Image loading and the eval transform: ``headstart.imaging`` (torch-free, shared with deployment)."""

from ..imaging import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, image_inputs, to_pil

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageTransform", "image_inputs", "to_pil"]
