"""The 19 CIFAR-100-C corruptions at 5 severities, on uint8 (32, 32, 3) images, deterministic for a Generator.

Parameters come from trainables/corruption_table.py (CIFAR-C's own, also read by the training augmentation
trainables/corrupt_aug.py; tests/test_corruptions.py checks both change images alike). The PyPI package
`imagecorruptions` has ImageNet-C's parameters hard-wired and draws from the global numpy RNG, so it is not
called; this suite re-implements each corruption on scikit-image / OpenCV / SciPy / Pillow primitives,
fixing what current libraries removed (`multichannel=` -> `channel_axis=-1`, `np.float_`) and replacing the
ImageMagick motion blur (motion_blur, snow) by an OpenCV kernel (corruptions_blur.motion_kernel). Images are
not bit-identical to the published CIFAR-100-C (other random draws; 8-bit rounding in motion blur), but equal
in distribution.

    corrupt(image, "fog", 3, np.random.default_rng(0))  # -> uint8 (32, 32, 3)
"""
from __future__ import annotations

from io import BytesIO

import cv2
import numpy as np
import skimage.color
import skimage.util
from PIL import Image
from scipy.ndimage import map_coordinates
from skimage.filters import gaussian

from trainables.corruption_table import NAMES, SEVERITIES, param
from trainables.errors import UserError, did_you_mean

from .corruptions_blur import SIZE, defocus_blur, gaussian_blur, glass_blur, motion_blur, zoom_blur
from .corruptions_weather import fog, frost, snow, spatter


def gaussian_noise(x, severity, rng):
    c = param("gaussian_noise", severity)
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, rng):
    c = param("shot_noise", severity)
    return np.clip(rng.poisson(x / 255.0 * c) / c, 0, 1) * 255


def impulse_noise(x, severity, rng):
    c = param("impulse_noise", severity)
    return np.clip(skimage.util.random_noise(x / 255.0, mode="s&p", amount=c, rng=rng), 0, 1) * 255


def speckle_noise(x, severity, rng):
    c = param("speckle_noise", severity)
    x = x / 255.0
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def contrast(x, severity, rng):
    c = param("contrast", severity)
    x = x / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def brightness(x, severity, rng):
    c = param("brightness", severity)
    hsv = skimage.color.rgb2hsv(x / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


def saturate(x, severity, rng):
    scale, shift = param("saturate", severity)
    hsv = skimage.color.rgb2hsv(x / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + shift, 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


def jpeg_compression(x, severity, rng):
    quality = param("jpeg_compression", severity)
    buffer = BytesIO()
    Image.fromarray(x).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def pixelate(x, severity, rng):
    c = param("pixelate", severity)
    small = Image.fromarray(x).resize((int(SIZE * c), int(SIZE * c)), Image.BOX)
    return np.asarray(small.resize((SIZE, SIZE), Image.BOX))


def elastic_transform(x, severity, rng):
    alpha, sigma, affine = np.array(param("elastic_transform", severity)) * SIZE
    image = np.asarray(x, dtype=np.float32) / 255.0
    shape = image.shape
    centre, side = np.float32(shape[:2]) // 2, min(shape[:2]) // 3
    pts1 = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
    image = cv2.warpAffine(image, cv2.getAffineTransform(pts1, pts2), shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx, dy = ((gaussian(rng.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha)
              .astype(np.float32)[..., np.newaxis] for _ in range(2))
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = (gy + dy).reshape(-1, 1), (gx + dx).reshape(-1, 1), gz.reshape(-1, 1)
    return np.clip(map_coordinates(image, coords, order=1, mode="reflect").reshape(shape), 0, 1) * 255


# The suite's implementation of each corruption of the table, in its order (tests check it covers the table).
SUITE = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog,
    brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise, gaussian_blur, spatter,
    saturate)}


def _check(name: str, severity: int) -> None:
    if name not in SUITE:
        raise UserError(f"unknown corruption '{name}'{did_you_mean(name, NAMES)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity must be 1..5, got {severity!r}")


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One corrupted copy of a uint8 (32, 32, 3) image; uint8 out, truncated as the CIFAR generator did."""
    _check(name, severity)
    image = np.asarray(image)
    if image.shape != (SIZE, SIZE, 3) or image.dtype != np.uint8:
        raise UserError(f"corrupt() takes uint8 (32, 32, 3) images, got {image.dtype} {image.shape}")
    out = np.asarray(SUITE[name](image, severity, rng))
    # The generator wrote np.uint8(float image): truncation, not rounding.
    return out if out.dtype == np.uint8 else np.clip(out, 0, 255).astype(np.uint8)


def corrupt_batch(images: np.ndarray, name: str, severity: int, rng: np.random.Generator,
                  out: np.ndarray | None = None) -> np.ndarray:
    """corrupt() over a uint8 (N, 32, 32, 3) batch, image by image from one Generator."""
    _check(name, severity)
    out = np.empty_like(images) if out is None else out
    for i in range(len(images)):
        out[i] = corrupt(images[i], name, severity, rng)
    return out
