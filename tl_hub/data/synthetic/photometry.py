"""Photometry on channel-first float32 images in [0, 1]: colour, exposure and light, optics (blur and
low source resolution), sensor noise and the conversion to uint8 pixels.

Everything works on (3, H, W) arrays: numpy broadcasts a per-channel factor over (3, H, W) several times
faster than over (H, W, 3), and blur and resampling become one small matrix product per axis.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

MIN_SIZE = 8


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # Same distribution as rng.uniform(low, high), at a third of the call overhead for scalars.
    return low + (high - low) * rng.random()


@functools.lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre row and column coordinates in [-0.5, 0.5], shaped (1, size, 1) and (1, 1, size)."""
    ramp = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    return ramp[None, :, None], ramp[None, None, :]


def gaussian_matrix(n_out: int, n_in: int, sigma: float) -> np.ndarray:
    """Row-stochastic (n_out, n_in) matrix: each output sample a Gaussian-weighted mean of the inputs.

    Positions are pixel centres on the same [0, 1] span, so it both resamples and blurs; `sigma` is in
    units of the larger of the two pixel pitches.
    """
    out_pos = (np.arange(n_out) + 0.5) / n_out
    in_pos = (np.arange(n_in) + 0.5) / n_in
    scale = sigma / min(n_out, n_in)
    weights = np.exp(-0.5 * ((out_pos[:, None] - in_pos[None, :]) / scale) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def color(lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A range of RGB colours, stored as (low, span) broadcastable over (3, H, W)."""
    low = np.array(lo, dtype=np.float32)[:, None, None]
    return low, np.array(hi, dtype=np.float32)[:, None, None] - low


def random_color(rng: np.random.Generator, color_range: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    low, span = color_range
    return low + span * rng.random((3, 1, 1), dtype=np.float32)


_GLARE = color((0.6, 0.6, 0.6), (1.0, 1.0, 1.0))


_IDENTITY = np.eye(3, dtype=np.float32)
# Every row is the Rec. 601 luma weights: multiplying by it replaces each channel with the luminance.
_TO_LUMA = np.tile(np.array([0.299, 0.587, 0.114], dtype=np.float32), (3, 1))


def color_matrix(fade: float, gains: np.ndarray) -> np.ndarray:
    """3x3 matrix that scales the channels by `gains`, then blends towards luminance by `fade`.

    Fading models sun-bleached or dirty paint and hazy air; as a matrix it costs one small product.
    """
    return (_IDENTITY * np.float32(1 - fade) + _TO_LUMA * np.float32(fade)) * gains.astype(np.float32)


def apply_color(matrix: np.ndarray, img: np.ndarray) -> np.ndarray:
    return (matrix @ img.reshape(3, -1)).reshape(img.shape)


def photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Haze, exposure, colour cast, uneven light and desaturation on a (3, H, W) image in [0, 1]."""
    if rng.random() < 0.2:
        # Veiling glare lifts the blacks before exposure, so a hazy frame can still be dark or bright.
        haze = uniform(rng, 0.15, 0.5)
        img = img * np.float32(1 - haze) + haze * random_color(rng, _GLARE)
    # GTSRB is dominated by underexposed frames, with a tail of overexposed ones.
    gain = min(max(math.exp(rng.normal(-0.4, 0.6)), 0.12), 2.2)
    cast = gain * (1 + 0.07 * rng.standard_normal(3))
    rows, cols = grid(img.shape[1])
    theta = uniform(rng, 0, 2 * math.pi)
    light = 1.0 + uniform(rng, 0.0, 0.5) * (math.cos(theta) * cols + math.sin(theta) * rows)
    img = np.clip(apply_color(color_matrix(uniform(rng, 0.0, 0.5), cast), img) * light, 0.0, 1.0)
    # Even the worst GTSRB frames keep some contrast; stretch ones that the random draws flattened.
    floor = uniform(rng, 0.045, 0.08)
    flat = img.ravel()
    mean = float(flat.mean())
    std = math.sqrt(max(float(flat.dot(flat)) / flat.size - mean * mean, 0.0))
    if std < floor:
        img = (img - mean) * np.float32(floor / max(std, 1e-4)) + mean
    return img


def optics(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Defocus, motion blur along an image axis, or low source resolution, as one matrix per axis.

    At most one of them per image: stacked, they smear a 32 x 32 sign beyond recognition.
    """
    size = img.shape[1]
    # Blur widths in pixels of a 32 x 32 image, scaled to the output size below.
    sigma_y = sigma_x = 0.0
    low = size
    kind = rng.random()
    if kind < 0.45:
        sigma_y = sigma_x = uniform(rng, 0.3, 1.0)
    elif kind < 0.55:
        # A moving camera smears mostly along one axis.
        sigma_y, sigma_x = uniform(rng, 0.0, 0.3), uniform(rng, 0.6, 1.2)
        if rng.random() < 0.3:
            sigma_y, sigma_x = sigma_x, sigma_y
    elif kind < 0.8:
        # Many GTSRB crops were upscaled from tiny detections; emulate the lost detail.
        low = int(rng.integers(max(MIN_SIZE // 2, size // 2), size))
    else:
        return img
    # Quantised blur widths let the per-axis matrices be cached; 0.05 px steps are invisible.
    rows = _optics_matrix(size, low, round(sigma_y * size / 32 * 20))
    cols = _optics_matrix(size, low, round(sigma_x * size / 32 * 20))
    return rows @ img @ cols.T


@functools.lru_cache(maxsize=2048)
def _optics_matrix(size: int, low: int, sigma_twentieths: int) -> np.ndarray:
    sigma = sigma_twentieths / 20
    m = gaussian_matrix(size, size, sigma) if sigma > 0.05 else np.eye(size, dtype=np.float32)
    if low < size:
        # Downsampling to `low` pixels and back blurs by about one low-resolution pixel.
        m = gaussian_matrix(size, low, 0.45) @ gaussian_matrix(low, size, 0.45) @ m
    return m


@functools.lru_cache(maxsize=8)
def _noise_table(size: int) -> np.ndarray:
    """Fixed Gaussian noise, cropped at random offsets per image; cheaper than fresh draws."""
    return np.random.default_rng(0).standard_normal((4, 3 * size, 3 * size), dtype=np.float32)


def sensor_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Mostly luminance noise, with a weaker independent component per channel (values in 0..1)."""
    sigma = 0.024 * rng.random() ** 2
    if sigma < 0.002:
        return img
    size = img.shape[1]
    y, x = rng.integers(0, 2 * size, size=2)
    z = _noise_table(size)[:, y : y + size, x : x + size]
    return img + z[:1] * np.float32(sigma) + z[1:] * np.float32(sigma / 3)


_LEVELS = np.linspace(0.0, 1.0, 256, dtype=np.float32)


def to_pixels(img: np.ndarray, gamma: float) -> np.ndarray:
    """(3, H, W) float image in [0, 1] to (H, W, 3) uint8, applying the camera's gamma by lookup table."""
    pixels = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return (_LEVELS**gamma * 255 + 0.5).astype(np.uint8)[pixels]
