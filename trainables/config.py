"""The one typed training config. Built from a dict at the edge; nothing below reads raw dicts.

Defaults are the seed student's part-1 recipe (SGD lr 0.1, momentum 0.9, wd 5e-4, StepLR x0.1
every 10 epochs, batch 128, 50 epochs) on the challenge's normalisation.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Mapping

from .errors import ConfigError, did_you_mean
from . import model_table
from .model_table import STEMS, option_error

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "onecycle", "step", "none")
AUTO_AUGMENTS = ("none", "autoaugment", "randaugment", "trivialaugment")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    # model
    model: str = "simple_cnn"
    pretrained: bool = False
    weights_path: str = ""  # local ImageNet weights file; empty = torchvision cache / download
    freeze_epochs: int = 0  # backbone frozen (head only) for the first N epochs
    backbone_lr_mult: float = 1.0  # discriminative LR: backbone gets lr * this
    stem: str = "auto"  # torchvision backbones: cifar (3x3 stride 1, no max-pool) | imagenet | auto (the model's own)
    input_size: int = 0  # >0: the model upsamples its 32x32 input to this on the device (0 = as is)
    # optimisation
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    scheduler: str = "step"
    step_size: int = 10
    gamma: float = 0.1
    warmup_epochs: int = 0
    pct_start: float = 0.3
    label_smoothing: float = 0.0
    clip_grad_norm: float = 0.0  # >0: gradients clipped to this total L2 norm before every step; 0 = off
    # weight averaging (trainables/averaging.py): validation and the returned model use the averaged weights
    ema_decay: float = 0.0  # >0: exponential moving average of weights and BN buffers, every step; 0 = off
    swa_epochs: int = 0  # >0: stochastic weight averaging of the last N epochs' end-of-epoch weights; 0 = off
    swa_lr: float = 0.0  # >0: SWALR anneals to this LR for the SWA epochs; 0 = the configured schedule continues
    # augmentation (train only; validation/test images are never augmented)
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    crop_padding: int = 4
    hflip: bool = True
    auto_augment: str = "none"
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    color_jitter: float = 0.0  # brightness/contrast/saturation strength; hue gets a quarter
    random_erasing: float = 0.0  # probability per image
    corruption_aug: float = 0.0  # probability per image of a CIFAR-C-style corruption (AugMix spirit)
    augmix: bool = False  # AugMix (Hendrycks et al. 2020), per image; trainables/augmix.py
    augmix_severity: int = 3
    augmix_width: int = 3  # augmentation chains mixed per image
    augmix_depth: int = 0  # ops per chain; 0 = random 1-3 per chain
    augmix_alpha: float = 1.0  # Dirichlet / Beta concentration of the mixing weights
    augmix_jsd: bool = True  # Jensen-Shannon consistency loss over (clean, augmix, augmix): 3x forward cost
    augmix_jsd_weight: float = 12.0  # the paper's lambda
    # runtime
    precision: str = "auto"
    # NHWC convolutions: 13-17% faster per step on this CPU for simple_cnn/bn_cnn, 2% for resnet18_cifar
    # (python bench/bench_train.py), and the layout tensor cores want with AMP on a GPU.
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    seed: int = 0
    # data
    data: str = ""  # path to a .npz (x_train, y_train, x_test, y_test) or a torchvision CIFAR-100 root
    download: bool = False  # torchvision source only; trials never download
    val_fraction: float = 0.1
    subset: int = 0  # stratified subset of the training split (0 = all), for smoke runs and proxies
    eval_batch_size: int = 1024

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None = None, **overrides: Any) -> "TrainConfig":
        raw = {**(raw or {}), **overrides}
        names = {f.name: f for f in fields(cls)}
        unknown = [k for k in raw if k not in names]
        if unknown:
            k = unknown[0]
            raise ConfigError(f"unknown config key '{k}'{did_you_mean(k, names)}", key=k)
        values = {k: coerce(k, v, names[k].type) for k, v in raw.items()}
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict(self.to_dict(), **changes)

    def validate(self) -> None:
        _choice("model", self.model, model_table.names())
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("auto_augment", self.auto_augment, AUTO_AUGMENTS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        _range("epochs", self.epochs, 1, 10_000)
        _range("batch_size", self.batch_size, 1, 65_536)
        _range("eval_batch_size", self.eval_batch_size, 1, 65_536)
        _range("lr", self.lr, 0.0, 10.0, low_open=True)
        _range("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _range("weight_decay", self.weight_decay, 0.0, 1.0)
        _range("step_size", self.step_size, 1, 10_000)
        _range("gamma", self.gamma, 0.0, 1.0, low_open=True)
        _range("warmup_epochs", self.warmup_epochs, 0, self.epochs - 1)
        _range("pct_start", self.pct_start, 0.0, 1.0, low_open=True, high_open=True)
        _range("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        _range("mixup_alpha", self.mixup_alpha, 0.0, 10.0)
        _range("cutmix_alpha", self.cutmix_alpha, 0.0, 10.0)
        _range("crop_padding", self.crop_padding, 0, 16)
        _range("randaugment_ops", self.randaugment_ops, 1, 10)
        _range("randaugment_magnitude", self.randaugment_magnitude, 0, 30)
        _range("color_jitter", self.color_jitter, 0.0, 1.0)
        _range("random_erasing", self.random_erasing, 0.0, 1.0)
        _range("corruption_aug", self.corruption_aug, 0.0, 1.0)
        _range("freeze_epochs", self.freeze_epochs, 0, self.epochs)
        _range("backbone_lr_mult", self.backbone_lr_mult, 0.0, 10.0)
        _choice("stem", self.stem, STEMS)
        _range("input_size", self.input_size, 0, 1024)
        _range("augmix_severity", self.augmix_severity, 1, 10)
        _range("augmix_width", self.augmix_width, 1, 10)
        _range("augmix_depth", self.augmix_depth, 0, 10)
        _range("augmix_alpha", self.augmix_alpha, 0.0, 10.0, low_open=True)
        _range("augmix_jsd_weight", self.augmix_jsd_weight, 0.0, 100.0)
        _range("clip_grad_norm", self.clip_grad_norm, 0.0, math.inf)
        self._check_averaging()
        _range("threads", self.threads, 0, 1024)
        _range("seed", self.seed, 0, 2**31 - 1)
        _range("val_fraction", self.val_fraction, 0.0, 0.9)
        _range("subset", self.subset, 0, 10_000_000)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov=true needs optimizer 'sgd' with momentum > 0", key="nesterov")
        if self.weights_path and not self.pretrained:
            raise ConfigError(f"weights_path '{self.weights_path}' is set but pretrained is false; "
                              f"set pretrained: true", key="weights_path")
        if self.pretrained:
            if self.model not in model_table.pretrained_names():
                raise ConfigError(
                    f"pretrained=true: model '{self.model}' has no ImageNet weights; "
                    f"choose one of {', '.join(model_table.pretrained_names())}", key="pretrained"
                )
        problem = option_error(self.model, self.stem, self.input_size)
        if problem:
            raise ConfigError(problem[1], key=problem[0])

    def _check_averaging(self) -> None:
        if self.ema_decay and not 0 < self.ema_decay < 1:
            raise ConfigError(f"config key 'ema_decay': {self.ema_decay} is out of range; allowed 0 (off) or "
                              f"strictly between 0 and 1 (e.g. 0.999)", key="ema_decay")
        _range("swa_epochs", self.swa_epochs, 0, 10_000)
        if self.swa_epochs >= self.epochs:
            raise ConfigError(f"config key 'swa_epochs': {self.swa_epochs} is longer than the run (epochs="
                              f"{self.epochs}); allowed 0 to {self.epochs - 1}: SWA averages the last epochs, after at "
                              f"least one plain one", key="swa_epochs")
        _range("swa_lr", self.swa_lr, 0.0, 10.0)
        if self.swa_lr and not self.swa_epochs:
            raise ConfigError(f"config key 'swa_lr': {self.swa_lr} is set but swa_epochs is 0 (SWA off); set "
                              f"swa_epochs or leave swa_lr 0", key="swa_lr")
        if self.ema_decay and self.swa_epochs:
            raise ConfigError(f"ema_decay={self.ema_decay} and swa_epochs={self.swa_epochs} both average the "
                              f"weights; choose one (set the other to 0)", key="swa_epochs")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
# What each field type accepts, in words (error messages here and in the search-space loader).
TYPE_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a finite number", "str": "a string"}


def coerce(key: str, value: Any, typ: Any) -> Any:
    """The one coercion of a value for a field of type `typ` (bool/int/float/str, or the type itself); the
    search-space loader uses it too, so a YAML value and a --set value mean the same thing everywhere.

    Tune/numpy scalars -> Python; numeric strings ('1e-4', which PyYAML leaves a str) -> numbers;
    true/false also as yes/no/on/off/1/0 (command-line text). Anything else: ConfigError naming `key`.
    """
    typ = typ if isinstance(typ, str) else typ.__name__
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy / torch scalars
    try:
        if typ == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, numbers.Integral) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError
        if typ == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, numbers.Integral):
                return int(value)  # as is, however large: the range check says what is allowed
            if isinstance(value, str):
                value = float(value.strip())
            if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
                return int(value)
            raise ValueError
        if typ == "float":
            if isinstance(value, bool):
                raise ValueError
            value = float(value.strip()) if isinstance(value, str) else float(value)
            if not math.isfinite(value):
                raise ValueError
            return value
        if typ == "str":
            if isinstance(value, str):
                return value
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # OverflowError: float(10**400)
        pass
    else:
        return value
    raise ConfigError(f"config key '{key}': {value!r} is not {TYPE_WORDS[typ]}", key=key)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"invalid {key} '{value}'; choose one of {', '.join(allowed)}", key=key)


def _range(key, value, low, high, low_open=False, high_open=False) -> None:
    bad_low = value <= low if low_open else value < low
    bad_high = value >= high if high_open else value > high
    if bad_low or bad_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"config key '{key}': {value} is out of range; allowed {lo}{low}, {high}{hi}", key=key)


def config_fields() -> dict[str, str]:
    """Field name -> type name, for the search-space loader's checks."""
    return {f.name: (f.type if isinstance(f.type, str) else f.type.__name__) for f in fields(TrainConfig)}

