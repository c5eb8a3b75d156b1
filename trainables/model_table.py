"""The models by name, and what each accepts, as data: no torch here, so that checking a config (every YAML
file, every CLI flag) stays instant; trainables/models.py builds them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    """One torchvision ImageNet CNN: how to build it, where its weights are, which layers to swap."""

    builder: str  # function in torchvision.models
    weights: str  # torchvision weights enum member, "Enum.MEMBER"
    stem: str  # dotted path of the first convolution
    head: str  # dotted path of the final nn.Linear (replaced by a 100-way one)
    pool: str = ""  # dotted path of a stem max-pool, dropped with the CIFAR stem
    default_stem: str = "imagenet"  # what stem 'auto' means


# The registry of ImageNet backbones is data: adding a CNN is one row (tests/test_models.py runs every row).
BACKBONES: dict[str, Backbone] = {
    "resnet18_cifar": Backbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "conv1", "fc", "maxpool", "cifar"),
    "resnet18": Backbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "conv1", "fc", "maxpool"),
    "resnet50": Backbone("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "conv1", "fc", "maxpool"),
    "resnext50_32x4d": Backbone("resnext50_32x4d", "ResNeXt50_32X4D_Weights.IMAGENET1K_V2", "conv1", "fc", "maxpool"),
    "wide_resnet50_2": Backbone("wide_resnet50_2", "Wide_ResNet50_2_Weights.IMAGENET1K_V2", "conv1", "fc", "maxpool"),
    **{f"efficientnet_b{i}": Backbone(f"efficientnet_b{i}", f"EfficientNet_B{i}_Weights.IMAGENET1K_{v}", "features.0.0",
                                      "classifier.1") for i, v in enumerate(("V1", "V2", "V1", "V1"))},
    "convnext_tiny": Backbone("convnext_tiny", "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", "features.0.0", "classifier.2"),
    "regnet_y_1_6gf": Backbone("regnet_y_1_6gf", "RegNet_Y_1_6GF_Weights.IMAGENET1K_V2", "stem.0", "fc"),
}
STEMS = ("auto", "cifar", "imagenet")
SCRATCH = ("simple_cnn", "bn_cnn", "small_cnn")  # from scratch, 32x32 only
NAMES = (*SCRATCH, *BACKBONES, "efficientnet_lite0")  # every model, in trainables.models.MODELS's order
PRETRAINED = (*BACKBONES, "efficientnet_lite0")
RESIZABLE = (*BACKBONES, "efficientnet_lite0")  # the from-scratch CNNs' linear layers fix them to 32x32


@dataclass(frozen=True)
class Added:
    """What a model added at run time accepts (trainables.models.register_model)."""

    pretrained: bool = False  # has ImageNet weights of its own: pretrained=true allowed
    resizable: bool = False  # takes input_size (not fixed to 32x32 by its linear layers)


# Names added at run time, by a program or a test with a network of its own (trainables.models.register_model, or
# add_name alone where only configs are checked and nothing is built). Config checks read this table, never
# trainables.models: checking a config must not import torch.
_ADDED: dict[str, Added] = {}


def names() -> tuple[str, ...]:
    """Every model a config may name: the built-in ones, then those added at run time."""
    return (*NAMES, *_ADDED)


def pretrained_names() -> tuple[str, ...]:
    return (*PRETRAINED, *(n for n, a in _ADDED.items() if a.pretrained))


def resizable_names() -> tuple[str, ...]:
    return (*RESIZABLE, *(n for n, a in _ADDED.items() if a.resizable))


def added(name: str) -> Added | None:
    """What a name added at run time accepts; None for a built-in or unknown name."""
    return _ADDED.get(name)


def add_name(name: str, *, pretrained: bool = False, resizable: bool = False, replace: bool = False) -> None:
    """Make `name` a valid config value. A built-in name cannot be taken; an added one only with replace=True."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model name is a non-empty string, not {name!r}")
    if name in NAMES:
        raise ValueError(f"model name '{name}' is a built-in model's; choose another name")
    if name in _ADDED and not replace:
        raise ValueError(f"model name '{name}' is already registered; pass replace=True to replace it")
    _ADDED[name] = Added(bool(pretrained), bool(resizable))


def remove_name(name: str) -> None:
    if name not in _ADDED:
        raise ValueError(f"model '{name}' was not added at run time; the built-in models stay")
    del _ADDED[name]


def option_error(model: str, stem: str, input_size: int) -> tuple[str, str] | None:
    """(key, why) when `stem` / `input_size` do not fit `model`, else None: TrainConfig.validate's check."""
    if stem != "auto" and model not in BACKBONES:
        return "stem", (f"config key 'stem': '{stem}' applies to the torchvision backbones only "
                        f"({', '.join(BACKBONES)}); model '{model}' has its own stem: leave stem auto")
    if model == "resnet18_cifar" and stem == "imagenet":
        return "stem", ("config key 'stem': resnet18_cifar always has the CIFAR stem; "
                        "model resnet18 has the ImageNet one")
    if input_size and input_size < 32:
        return "input_size", f"config key 'input_size': {input_size} is too small; 0 (feed 32x32 as is) or at least 32"
    if input_size and model not in resizable_names():
        return "input_size", (f"config key 'input_size': model '{model}' is built for 32x32 inputs; "
                               f"input_size applies to {', '.join(resizable_names())}")
    return None
