"""Weather corruptions (snow, frost, fog, spatter) at the CIFAR-10/100-C parameters (trainables/corruption_table.py).

Same contract as corruptions_blur. Frost overlays crops of the six frost photographs that the PyPI package
`imagecorruptions` ships (the same files as hendrycks/robustness); as in the CIFAR generator only the first
five are drawn.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import cv2
import numpy as np
from skimage.filters import gaussian

from trainables.corruption_table import param

from .corruptions_blur import SIZE, apply_motion_blur, clipped_zoom

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


def plasma_fractal(rng: np.random.Generator, mapsize: int = SIZE, wibbledecay: float = 3) -> np.ndarray:
    """Diamond-square height map in [0, 1] (the generator's fog texture); float64, not removed np.float_."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize, wibble = mapsize, 100.0

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]  # squares: centre = mean of 4 corners
        square = corners + np.roll(corners, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(square)
        dr = maparray[half:mapsize:stepsize, half:mapsize:stepsize]  # diamonds: mean of 4 neighbours
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        top = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(top)
        left = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(left)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(x, severity, rng):
    strength, decay = param("fog", severity)
    x = x / 255.0
    max_val = x.max()
    x = x + strength * plasma_fractal(rng, wibbledecay=decay)[:SIZE, :SIZE, np.newaxis]
    return np.clip(x * max_val / (max_val + strength), 0, 1) * 255


@functools.lru_cache(maxsize=None)
def frost_texture(index: int) -> np.ndarray:
    """Frost photograph `index` at 0.2 scale, RGB uint8 (read once per process)."""
    spec = importlib.util.find_spec("imagecorruptions")  # find_spec: its frost files, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("frost needs the frost images of the PyPI package 'imagecorruptions': "
                          "pip install imagecorruptions")
    path = os.path.join(list(spec.submodule_search_locations)[0], "frost", FROST_FILES[index])
    image = cv2.imread(path)
    if image is None:
        raise ImportError(f"frost image '{path}' could not be read; reinstall imagecorruptions")
    return cv2.resize(image, (0, 0), fx=0.2, fy=0.2)[..., ::-1].copy()  # BGR -> RGB


def frost(x, severity, rng):
    keep, amount = param("frost", severity)
    texture = frost_texture(int(rng.integers(5)))
    top, left = rng.integers(0, texture.shape[0] - SIZE), rng.integers(0, texture.shape[1] - SIZE)
    crop = texture[top:top + SIZE, left:left + SIZE].astype(np.float64)
    return np.clip(keep * x + amount * crop, 0, 255)


def snow(x, severity, rng):
    loc, scale, zoom, threshold, radius, sigma, keep = param("snow", severity)
    x = np.asarray(x, dtype=np.float32) / 255.0
    flakes = rng.normal(size=x.shape[:2], loc=loc, scale=scale)
    flakes = clipped_zoom(flakes[..., np.newaxis], zoom)[..., 0]
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # the generator went through an 8-bit PNG here
    # ImageMagick motion blur in the original; the equivalent OpenCV kernel here (see motion_kernel).
    flakes = apply_motion_blur(flakes, radius, sigma, rng.uniform(-135, -45))[..., np.newaxis] / 255.0
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    x = keep * x + (1 - keep) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, k=2), 0, 1) * 255


def spatter(x, severity, rng):
    loc, scale, sigma, threshold, intensity, mud = param("spatter", severity)
    x = np.asarray(x, dtype=np.float32) / 255.0
    liquid = gaussian(rng.normal(size=x.shape[:2], loc=loc, scale=scale), sigma=sigma)
    liquid[liquid < threshold] = 0
    if not mud:  # water drops: bright pale-turquoise rims found by edge detection
        # clip before the cast: the original's astype(uint8) wrapped values above 1.0 (undefined in numpy 2)
        liquid = (np.clip(liquid, 0, 1) * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
        dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, emboss), (3, 3)).astype(np.float32)
        m = liquid * dist
        peak = m.max()
        if peak == 0:  # no drop survived the threshold: nothing to add (the original divided by zero)
            return x * 255
        m = (m / peak * intensity)[..., np.newaxis]
        color = np.array([175, 238, 238], np.float32) / 255.0
        return np.clip(x + m * color, 0, 1) * 255
    m = gaussian((liquid > threshold).astype(np.float32), sigma=intensity)  # mud: dark brown blotches
    m[m < 0.8] = 0
    color = np.array([63, 42, 20], np.float32) / 255.0 * m[..., np.newaxis]
    return np.clip(x * (1 - m[..., np.newaxis]) + color, 0, 1) * 255
