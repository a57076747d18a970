"""Target networks: torchvision ResNet-50, ResNet-50-D, ResNet-200, Wide-ResNet-28-10, CIFAR ResNet-18, a small CNN.

``build_model(name, num_classes, in_channels, width)``; all take float NCHW input and return
logits [B, num_classes]. No weights are downloaded: every model starts from scratch. Only the
small CNN's width is a setting (:data:`WIDTH_MODELS`); the others are the papers' fixed networks.
"""

from __future__ import annotations

from torch import nn

SMALL_CNN_WIDTH = 32
"""The small CNN's default width (channels of its first convolution)."""


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: Fashion-MNIST's default (28×28, 1 channel)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = SMALL_CNN_WIDTH):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        o = self.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.dropout(self.relu(self.bn2(y))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """Wide-ResNet-depth-k (Zagoruyko & Komodakis), pre-activation; 28-10 by default."""

    def __init__(
        self, depth: int = 28, widen: int = 10, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"Wide-ResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        for stage in range(3):
            for i in range(n):
                layers.append(
                    _WideBlock(
                        widths[stage] if i == 0 else widths[stage + 1],
                        widths[stage + 1],
                        (1 if stage == 0 else 2) if i == 0 else 1,
                        dropout,
                    )
                )
        layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def _cifar_resnet18(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv, no max-pool."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _resnet50(num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import resnet50

    model = resnet50(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def _resnet200(num_classes: int, in_channels: int) -> nn.Module:
    """ResNet-200 (He et al., 2016): torchvision's bottleneck ResNet with [3, 24, 36, 3] blocks."""
    from torchvision.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, [3, 24, 36, 3], num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def _resnet50d(num_classes: int, in_channels: int) -> nn.Module:
    """ResNet-50-D (He et al., "Bag of Tricks", 2019): ResNet-50 with a deep stem (three 3×3
    convolutions, 32-32-64 channels) and shortcuts that downsample by 2×2 average pooling
    before their 1×1 convolution (stride 1)."""
    model = _resnet50(num_classes, in_channels)

    def conv_bn(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    model.conv1 = nn.Sequential(
        *conv_bn(in_channels, 32, 2), *conv_bn(32, 32, 1), nn.Conv2d(32, 64, 3, 1, 1, bias=False)
    )
    for layer in (model.layer2, model.layer3, model.layer4):
        assert isinstance(layer, nn.Sequential)
        block = layer[0]
        assert isinstance(block, nn.Module)
        shortcut = block.downsample
        assert isinstance(shortcut, nn.Sequential)  # torchvision's conv + batch norm
        conv, bn = shortcut[0], shortcut[1]
        assert isinstance(conv, nn.Conv2d)
        block.downsample = nn.Sequential(
            nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(conv.in_channels, conv.out_channels, 1, 1, bias=False),
            bn,
        )
    return model


WIDTH_MODELS = {"small_cnn": SMALL_CNN_WIDTH}
"""Model name → its default width, for the models whose width is a setting (``--width``)."""

MODELS = {
    "small_cnn": lambda num_classes, in_channels: SmallCNN(num_classes, in_channels),
    "wrn_28_10": lambda num_classes, in_channels: WideResNet(28, 10, num_classes, in_channels),
    "resnet18_cifar": _cifar_resnet18,
    "resnet50": _resnet50,
    "resnet50d": _resnet50d,
    "resnet200": _resnet200,
}
"""Model name → constructor ``(num_classes, in_channels) -> nn.Module``."""


def check_width(name: str, width: int | None) -> None:
    """ValueError unless ``width`` is None or a positive width of a model in :data:`WIDTH_MODELS`."""
    if width is None:
        return
    if name not in WIDTH_MODELS:
        raise ValueError(
            f"width {width}: only {', '.join(WIDTH_MODELS)} has a width setting; model {name!r} is a fixed network"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")


def effective_width(name: str, width: int | None) -> int | None:
    """The width model ``name`` is built with: ``width``, its default (:data:`WIDTH_MODELS`), or
    None for a fixed network."""
    check_width(name, width)
    return width if width is not None else WIDTH_MODELS.get(name)


def build_model(name: str, num_classes: int, in_channels: int = 3, width: int | None = None) -> nn.Module:
    """A freshly initialized model ``name`` (see :data:`MODELS`); ``width``: the small CNN's
    (None: :data:`SMALL_CNN_WIDTH`; any other model refuses one)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    check_width(name, width)
    if width is not None:
        return SmallCNN(num_classes, in_channels, width)
    return MODELS[name](num_classes, in_channels)
