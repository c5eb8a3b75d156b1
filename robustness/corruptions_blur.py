"""Blur corruptions at the CIFAR-10/100-C parameters (trainables/corruption_table.py).

Each takes a uint8 (32, 32, 3) image, a severity 1..5 and a numpy Generator, and returns values in
[0, 255] (float or uint8); `corruptions.corrupt` turns them into uint8 the way the generator did.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import zoom as scipy_zoom
from skimage.filters import gaussian

from trainables.corruption_table import param

SIZE = 32


def clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre by `factor` (bilinear) and crop back to the input size."""
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    out = scipy_zoom(img[top:top + ch, top:top + ch], (factor, factor) + (1,) * (img.ndim - 2), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim:trim + h, trim:trim + h]


def motion_kernel(radius: float, sigma: float, angle: float) -> np.ndarray:
    """The kernel of ImageMagick's MotionBlurImage, for cv2.filter2D.

    Hendrycks ran ImageMagick through Wand; we do not depend on ImageMagick. Its motion blur is a
    one-sided half-Gaussian: width 2·ceil(radius)+1 taps, tap i weighted exp(-i²/2σ²) (normalised) and
    sampled at (x, y) + round(i·(cos a, sin a)), edges replicated. Placing those taps in a 2-D kernel gives
    the same filter; outputs differ from ImageMagick's only by 8-bit rounding.
    """
    width = int(2 * math.ceil(radius) + 1)
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma * sigma))
    taps /= taps.sum()
    a = math.radians(angle)
    kernel = np.zeros((2 * width + 1, 2 * width + 1), np.float32)
    for i, w in enumerate(taps):
        # ImageMagick's rounding: ceil(v - 0.5)
        dx, dy = math.ceil(i * math.cos(a) - 0.5), math.ceil(i * math.sin(a) - 0.5)
        kernel[width + dy, width + dx] += w
    return kernel


def apply_motion_blur(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Motion-blur a uint8 image (H, W) or (H, W, C); uint8 out, rounded like an 8-bit PNG."""
    out = cv2.filter2D(img.astype(np.float32), -1, motion_kernel(radius, sigma, angle),
                       borderType=cv2.BORDER_REPLICATE)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    size = 8 if radius <= 8 else int(radius)
    ksize = (3, 3) if radius <= 8 else (5, 5)
    L = np.arange(-size, size + 1)
    X, Y = np.meshgrid(L, L)
    disk = ((X ** 2 + Y ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)  # anti-alias the disk's edge


def gaussian_blur(x, severity, rng):
    c = param("gaussian_blur", severity)
    # Hendrycks passed multichannel=True, removed from scikit-image; channel_axis=-1 is the same thing.
    return np.clip(gaussian(x / 255.0, sigma=c, channel_axis=-1), 0, 1) * 255


def glass_blur(x, severity, rng):
    sigma, delta, iterations = param("glass_blur", severity)
    x = np.uint8(gaussian(x / 255.0, sigma=sigma, channel_axis=-1) * 255)
    # The original loops h, w = 31..2 (descending) and "swaps" x[h, w] with x[h+dy, w+dx] by tuple
    # assignment of numpy views, which actually copies the neighbour into (h, w) and leaves the neighbour
    # as is. With dx, dy drawn from {-1, 0} (randint(-1, 1)) every neighbour read is still unvisited, so the
    # loop equals one vectorised gather from the unmodified image, per iteration.
    assert delta == 1, "the gather below relies on neighbours in {-1, 0}"
    idx = np.arange(SIZE - delta, delta, -1)  # 31..2, the original loop order
    hh, ww = np.meshgrid(idx, idx, indexing="ij")
    for _ in range(iterations):
        d = rng.integers(-delta, delta, size=hh.shape + (2,))  # (dx, dy) per pixel, in loop order
        src = x.copy()
        x[hh, ww] = src[hh + d[..., 1], ww + d[..., 0]]
    return np.clip(gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255


def defocus_blur(x, severity, rng):
    radius, alias = param("defocus_blur", severity)
    # One filter2D over the 3 channels equals the original per-channel loop (same kernel, same border).
    return np.clip(cv2.filter2D(x / 255.0, -1, _disk(radius, alias)), 0, 1) * 255


def motion_blur(x, severity, rng):
    radius, sigma = param("motion_blur", severity)
    return apply_motion_blur(np.ascontiguousarray(x), radius, sigma, rng.uniform(-45, 45))


def zoom_blur(x, severity, rng):
    factors = np.arange(1, param("zoom_blur", severity), 0.01)  # the generator's np.arange(1, 1.06, 0.01) ...
    x = (x / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255
