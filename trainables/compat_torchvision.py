"""Every private torchvision name trainables uses, in this one file, checked at import.

augment.py and corrupt_aug.py run torchvision's own kernels batch-wide (per-image factors and grids with the same
arithmetic: tests/test_augment.py compares them bit for bit), which takes torchvision's private colour/geometry
helpers and the auto-augment transforms' private tables. Private names move between releases without notice: a
missing one fails here, at import, naming itself, the release this was built on and the one installed, instead of
a trial failing deep in a sweep. The rest of trainables imports these names from here only.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import torch
import torchvision
from torchvision.transforms import v2

PINNED = "0.29"  # setup.cfg pins torchvision==0.29.1: every name below was read off that release

# module -> the private functions taken from it
FUNCTIONS = {
    "torchvision.transforms.v2.functional._color": ("_hsv_to_rgb", "_rgb_to_hsv", "_rgb_to_grayscale_image"),
    "torchvision.transforms.v2.functional._geometry": (
        "_affine_grid", "_apply_grid_transform", "_get_inverse_affine_matrix"),
}
_ON_EVERY_AUTO = ("_AUGMENTATION_SPACE", "_apply_image_or_video_transform", "_fill")
# auto-augment transform -> the private members the accessors below read (instance attributes too: checked on one)
MEMBERS = {
    "AutoAugment": (*_ON_EVERY_AUTO, "_policies"),
    "RandAugment": _ON_EVERY_AUTO,
    "TrivialAugmentWide": _ON_EVERY_AUTO,
}


def check(found: Mapping[str, Any], wanted: Mapping[str, tuple[str, ...]], installed: str) -> None:
    """ImportError naming the first name of wanted[where] that found[where] lacks (None: where is missing)."""
    for where, names in wanted.items():
        for name in names:
            if found.get(where) is None or not hasattr(found[where], name):
                raise ImportError(
                    f"torchvision {installed} has no {where}.{name}, a private name trainables uses "
                    f"(trainables/compat_torchvision.py); this code was built on torchvision {PINNED}.x: install "
                    f"the version setup.cfg pins, or port that file to this release")


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_MODULES = {name: _module(name) for name in FUNCTIONS}
_SAMPLES = {"AutoAugment": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), "RandAugment": v2.RandAugment(),
            "TrivialAugmentWide": v2.TrivialAugmentWide()}
check({**_MODULES, **_SAMPLES}, {**FUNCTIONS, **MEMBERS}, torchvision.__version__)

_color = _MODULES["torchvision.transforms.v2.functional._color"]
_geometry = _MODULES["torchvision.transforms.v2.functional._geometry"]
hsv_to_rgb = _color._hsv_to_rgb
rgb_to_hsv = _color._rgb_to_hsv
rgb_to_grayscale_image = _color._rgb_to_grayscale_image
affine_grid = _geometry._affine_grid
apply_grid_transform = _geometry._apply_grid_transform
get_inverse_affine_matrix = _geometry._get_inverse_affine_matrix


def augmentation_space(tv: v2.Transform) -> dict:
    """op name -> (magnitude table function, signed), in torchvision's op order."""
    return tv._AUGMENTATION_SPACE


def policies(tv: v2.AutoAugment) -> list:
    """AutoAugment's sub-policies: [((op, probability, magnitude bin), (op, probability, magnitude bin)), ...]."""
    return tv._policies


def apply_op(tv: v2.Transform, x: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """torchvision's own dispatch of one auto-augment op, with the transform's interpolation and fill."""
    return tv._apply_image_or_video_transform(x, name, magnitude, interpolation=tv.interpolation, fill=tv._fill)
