"""Training augmentation on whole uint8 NCHW batches (CPU or GPU), every image its own random draw.

torchvision's v2 AutoAugment/RandAugment/TrivialAugmentWide, called on a batch tensor, draw ONE
sub-policy / op / magnitude for the whole batch. Here each image draws its own from the caller's
generator, and each op runs once on the group of images that drew it, with torchvision's own policy
tables and kernels (colour blends and affine warps take a per-image factor / grid, same arithmetic).
All randomness comes from the passed generator, so a resumed run replays exactly.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as nnf
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .augmix import AugMix
from . import compat_torchvision as tvc
from .config import TrainConfig
from .corrupt_aug import corrupt
from .data import normalize


def _rand(g: torch.Generator, *shape: int, dtype=torch.float32) -> torch.Tensor:
    # On the generator's device, so a CPU generator (checkpointed by the engine) can drive GPU batches.
    return torch.rand(shape, generator=g, device=g.device, dtype=dtype).cpu()


def _randint(g: torch.Generator, high: int, n: int) -> torch.Tensor:
    return torch.randint(high, (n,), generator=g, device=g.device).cpu()


def _groups(keys: torch.Tensor):
    """(key, indices) for each distinct value of a CPU tensor: one op call per group, not per image."""
    for k in keys.unique().tolist():
        yield k, (keys == k).nonzero().squeeze(1)


def crop_flip(x: torch.Tensor, padding: int, hflip: bool, g: torch.Generator) -> torch.Tensor:
    """Zero-padded random crop and p=0.5 horizontal flip, per image, as one gather (4x faster than
    advanced indexing on this CPU)."""
    n, c, h, w = x.shape
    rows = torch.arange(h).expand(n, h)
    cols = torch.arange(w).expand(n, w)
    if padding:
        off = _randint(g, 2 * padding + 1, 2 * n).view(2, n, 1)
        x = nnf.pad(x, (padding,) * 4)
        rows, cols = rows + off[0], cols + off[1]
    if hflip:
        cols = torch.where(_rand(g, n, 1) < 0.5, cols.flip(1), cols)
    flat = (rows[:, :, None] * x.shape[-1] + cols[:, None, :]).view(n, 1, h * w).to(x.device)
    return x.reshape(n, c, -1).gather(2, flat.expand(n, c, h * w)).view(n, c, h, w)


_AFFINE = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_BLEND = ("Brightness", "Color", "Contrast", "Sharpness")


@lru_cache(maxsize=2048)  # magnitudes come from finite bin tables, so this stays small
def _grid(name: str, mag: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    """The sampling grid torchvision's F.affine / F.rotate builds for _apply_image_or_video_transform."""
    center, angle, translate, shear = [0.0, 0.0], 0.0, [0.0, 0.0], [0.0, 0.0]
    if name == "ShearX":
        center, shear = [-0.5 * w, -0.5 * h], [math.degrees(math.atan(mag)), 0.0]
    elif name == "ShearY":
        center, shear = [-0.5 * w, -0.5 * h], [0.0, math.degrees(math.atan(mag))]
    elif name == "TranslateX":
        translate = [float(int(mag)), 0.0]
    elif name == "TranslateY":
        translate = [0.0, float(int(mag))]
    else:  # Rotate: F.rotate negates the angle relative to F.affine
        angle = -(mag % 360)
    matrix = tvc.get_inverse_affine_matrix(center, angle, translate, 1.0, shear)
    theta = torch.tensor(matrix, dtype=torch.float32, device=device).reshape(1, 2, 3)
    return tvc.affine_grid(theta, w=w, h=h, ow=w, oh=h)


def _affine(x: torch.Tensor, name: str, mag: torch.Tensor) -> torch.Tensor:
    vals, inverse = mag.unique(return_inverse=True)
    grids = torch.cat([_grid(name, v, *x.shape[-2:], x.device) for v in vals.tolist()])
    return tvc.apply_grid_transform(x, grids[inverse.to(x.device)], "nearest", None)


def _blend(x: torch.Tensor, name: str, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_* with a per-image factor (same degenerate image and float32 arithmetic)."""
    ratio = factor.to(torch.float32).view(-1, 1, 1, 1).to(x.device)
    alpha = (1.0 - factor).to(torch.float32).view(-1, 1, 1, 1).to(x.device)
    xf = x.float()
    if name == "Brightness":
        out = xf * ratio
    elif name == "Sharpness":  # factor 0 gives the blurred degenerate (borders untouched)
        out = torch.addcmul(xf, F.adjust_sharpness(x, 0.0).float() - xf, alpha)
    else:
        gray = tvc.rgb_to_grayscale_image(x, num_output_channels=1, preserve_dtype=False).floor_()
        if name == "Contrast":
            gray = gray.mean(dim=(-3, -2, -1), keepdim=True)
        out = torch.addcmul(xf * ratio, gray, alpha)  # fused like torchvision's add_(alpha=): bit-exact
    return out.clamp_(0, 255).to(torch.uint8)


class AutoAugmentFamily:
    """One of torchvision's auto-augment transforms with independent per-image draws."""

    def __init__(self, config: TrainConfig):
        kind = config.auto_augment
        if kind == "autoaugment":
            self.tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
            self.bins = 10  # AutoAugment.forward's num_bins
        elif kind == "randaugment":
            self.tv = v2.RandAugment(num_ops=config.randaugment_ops, magnitude=config.randaugment_magnitude)
            self.bins = self.tv.num_magnitude_bins
        elif kind == "trivialaugment":
            self.tv = v2.TrivialAugmentWide()
            self.bins = self.tv.num_magnitude_bins
        else:
            raise ValueError(f"no auto-augment named '{kind}'")
        self.kind = kind
        self.names = list(tvc.augmentation_space(self.tv))
        self.signed = torch.tensor([signed for _, signed in tvc.augmentation_space(self.tv).values()])
        if kind == "autoaugment":  # sub-policy table: (policy, step) -> op index, probability, magnitude bin
            pols = tvc.policies(self.tv)
            self.pol_ops = torch.tensor([[self.names.index(op) for op, _, _ in p] for p in pols])
            self.pol_probs = torch.tensor([[pr for _, pr, _ in p] for p in pols], dtype=torch.float64)
            self.pol_bins = torch.tensor([[b or 0 for _, _, b in p] for p in pols])

    def table(self, h: int, w: int) -> torch.Tensor:
        """(op, bin) -> unsigned magnitude, float64 holding torchvision's float32 values; 0 where none."""
        rows = [fn(self.bins, h, w) for fn, _ in tvc.augmentation_space(self.tv).values()]
        return torch.stack([torch.zeros(self.bins) if r is None else r.float() for r in rows]).double()

    def draw(self, n: int, h: int, w: int, g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per step, (op index per image, -1 = skip; signed magnitude per image), on the CPU."""
        table, steps = self.table(h, w), []
        if self.kind == "autoaugment":
            policy = _randint(g, len(self.pol_ops), n)
            for s in range(self.pol_ops.shape[1]):
                op = self.pol_ops[policy, s]
                applied = _rand(g, n, dtype=torch.float64) <= self.pol_probs[policy, s]
                steps.append((torch.where(applied, op, -1), table[op, self.pol_bins[policy, s]]))
        elif self.kind == "randaugment":
            for _ in range(self.tv.num_ops):
                op = _randint(g, len(self.names), n)
                steps.append((op, table[op, self.tv.magnitude]))
        else:
            op = _randint(g, len(self.names), n)
            steps.append((op, table[op, _randint(g, self.bins, n)]))
        # torchvision negates a signed op's magnitude with p=0.5
        return [(op, torch.where(self.signed[op.clamp(min=0)] & (_rand(g, n) <= 0.5), -mag, mag)) for op, mag in steps]

    def apply(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        out = None
        for k, idx in _groups(op):
            name = self.names[k] if k >= 0 else "Identity"
            if name == "Identity":
                continue
            dev_idx = idx.to(x.device)
            sub, m = x.index_select(0, dev_idx), mag[idx]
            if name in _AFFINE:
                sub = _affine(sub, name, m)
            elif name in _BLEND:
                sub = _blend(sub, name, 1.0 + m)
            else:  # few distinct magnitudes (or none): torchvision's own dispatch per group
                for v, j in _groups(m):
                    j = j.to(x.device)
                    sub[j] = tvc.apply_op(self.tv, sub[j], name, v)
            out = x.clone() if out is None else out
            out.index_copy_(0, dev_idx, sub)
        return x if out is None else out

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for op, mag in self.draw(x.shape[0], *x.shape[-2:], g):
            x = self.apply(x, op, mag)
        return x


def _jitter_brightness(x, f):
    return (x * f).clamp_(0, 1)


def _jitter_contrast(x, f):
    mean = tvc.rgb_to_grayscale_image(x, preserve_dtype=False).mean(dim=(-3, -2, -1), keepdim=True)
    return (x * f + mean * (1 - f)).clamp_(0, 1)


def _jitter_saturation(x, f):
    gray = tvc.rgb_to_grayscale_image(x, preserve_dtype=False)
    return (x * f + gray * (1 - f)).clamp_(0, 1)


def _jitter_hue(x, f):
    h, s, v = tvc.rgb_to_hsv(x).unbind(-3)
    return tvc.hsv_to_rgb(torch.stack(((h + f[:, 0]).remainder_(1.0), s, v), -3))


_JITTER = (_jitter_brightness, _jitter_contrast, _jitter_saturation, _jitter_hue)


def color_jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """torchvision ColorJitter(s, s, s, s/4) per image, each image in its own random order of the 4 ops."""
    n = x.shape[0]
    u = _rand(g, 4, n)
    factors = torch.cat([1 - strength + 2 * strength * u[:3], (2 * u[3:] - 1) * strength / 4]).to(x.device)
    order = _rand(g, n, 4).argsort(1)
    y = x.float().div_(255)
    for slot in range(4):
        for k, idx in _groups(order[:, slot]):
            idx = idx.to(x.device)
            y[idx] = _JITTER[k](y[idx], factors[k, idx].view(-1, 1, 1, 1))
    return y.mul_(255).round_().to(torch.uint8)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """torchvision RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) per image: up to 10
    tries for a box that fits, none erased if all fail."""
    n, _, h, w = x.shape
    hit = _rand(g, n) < p
    area = h * w * (0.02 + 0.31 * _rand(g, n, 10, dtype=torch.float64))
    aspect = torch.exp(math.log(0.3) + math.log(3.3 / 0.3) * _rand(g, n, 10, dtype=torch.float64))
    eh, ew = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (eh < h) & (ew < w)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # argmax returns the first of ties
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    top = (_rand(g, n, dtype=torch.float64) * (h - eh + 1)).floor()
    left = (_rand(g, n, dtype=torch.float64) * (w - ew + 1)).floor()
    r, c = torch.arange(h), torch.arange(w)
    in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])
    in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & (hit & fits.any(1))[:, None, None]
    return x.masked_fill(mask[:, None].to(x.device), 0.0)


@contextmanager
def _one_thread(active: bool):
    """These ops are small (a 256-image batch is <1M elements per op): on this 2-core box torch's OpenMP
    threads gained nothing and, with other processes on the cores, spin-waited: 1295 ms CPU / 2601 ms
    wall per 256 images at 2 threads vs 72 / 202 at 1. Thread-local under torch's OpenMP backend."""
    if not active:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BatchAugment:
    """`BatchAugment(config)(x_uint8_nchw, generator)` -> float32 normalised batch, same device.

    With AugMix + JSD the batch holds `views` = 3 views per image side by side on the channel axis,
    (N, 9, H, W): clean, augmix, augmix. Mixup/CutMix then mix all three the same way, and
    `split_views` turns it into the (3N, 3, H, W) batch the model sees.
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.auto = None if config.auto_augment == "none" else AutoAugmentFamily(config)
        self.augmix = (AugMix(config.augmix_severity, config.augmix_width, config.augmix_depth, config.augmix_alpha)
                       if config.augmix else None)
        self.views = 3 if config.augmix and config.augmix_jsd else 1

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a uint8 NCHW RGB batch, got {x.dtype} {tuple(x.shape)}")
        with _one_thread(x.device.type == "cpu"):
            return self._augment(x, generator)

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.config
        if c.crop_padding or c.hflip:
            x = crop_flip(x, c.crop_padding, c.hflip, g)
        if self.auto is not None:
            x = self.auto(x, g)
        if c.color_jitter:
            x = color_jitter(x, c.color_jitter, g)
        if c.corruption_aug:
            x = corrupt(x, c.corruption_aug, g)
        if self.augmix is None:
            views = [x]
        elif self.views == 1:
            views = [self.augmix(x, g)]
        else:
            views = [x, self.augmix(x, g), self.augmix(x, g)]
        views = [normalize(v) for v in views]
        if c.random_erasing:
            views = [random_erase(v, c.random_erasing, g) for v in views]
        return views[0] if len(views) == 1 else torch.cat(views, 1)


def split_views(x: torch.Tensor) -> torch.Tensor:
    """(N, 3V, H, W) -> (V N, 3, H, W): view 0 of every image first (the clean one with AugMix + JSD)."""
    return x if x.shape[1] == 3 else torch.cat(x.split(3, 1))


def mix(x: torch.Tensor, y: torch.Tensor, config: TrainConfig, generator: torch.Generator):
    """MixUp or CutMix (one per batch, p=0.5 each when both are on) -> (x, y_a, y_b, lam).

    Loss: lam * CE(y_a) + (1 - lam) * CE(y_b). Lambda ~ Beta(alpha, alpha) via numpy seeded from the
    generator (torch has no seeded Beta sampler); CutMix's lam is the unpasted area actually kept.
    """
    on = [(kind, a) for kind, a in (("mixup", config.mixup_alpha), ("cutmix", config.cutmix_alpha)) if a > 0]
    if not on:
        return x, y, y, 1.0
    g = generator
    kind, alpha = on[0] if len(on) == 1 or _rand(g, 1).item() < 0.5 else on[1]
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g, device=g.device)))
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=g, device=g.device).to(x.device)
    if kind == "mixup":
        return x * lam + x[perm] * (1 - lam), y, y[perm], lam
    h, w = x.shape[-2:]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return out, y, y[perm], 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
