"""The scene around a sign: a template warped into place (scale, offset, rotation, viewing angle) over
a random background (sky, foliage, facades, shade, gradients) with a post and neighbouring signs.

The sign is warped at twice the output size and box-filtered down; everything else happens at the output
size on channel-first float32 arrays (see photometry).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from PIL import Image

from tl_hub.data.synthetic.photometry import (
    MIN_SIZE,
    apply_color,
    color,
    color_matrix,
    gaussian_matrix,
    grid,
    random_color,
    uniform,
)
from tl_hub.data.synthetic.pictograms import template, variants
from tl_hub.data.synthetic.primitives import BLUE, RED


class Placement(NamedTuple):
    """Where the sign landed in the output image, in pixels."""

    cx: float
    cy: float
    extent: float


def warped_sign(class_id: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, Placement]:
    """The sign as premultiplied float32 RGBA of shape (4, size, size), and where it was placed.

    The warp is offset . rotation . scale . perspective, applied to template coordinates normalised to
    [-1, 1]; PIL wants its inverse, from output pixels back to template pixels. The cached template is
    first resized, with antialiasing, to the sign's size at twice the output resolution; the warp then
    samples it about 1:1 at that resolution, and a 2x2 box filter gives the output.
    """
    extent = min(max(rng.normal(0.76, 0.08), 0.55), 0.95) * size
    # Turning the sign away foreshortens one axis and shrinks its far side, as in a pinhole camera.
    yaw = uniform(rng, -0.5, 0.5) if rng.random() < 0.7 else 0.0
    pitch = uniform(rng, -0.3, 0.3) if rng.random() < 0.5 else 0.0
    angle = math.radians(min(max(rng.normal(0.0, 4.0), -12.0), 12.0))
    slack = (size - extent) / 2
    cx, cy = size / 2 + (rng.random(2) * 1.2 - 0.6) * slack
    sx = extent * math.cos(yaw) * rng.normal(1.0, 0.03)
    sy = extent * math.cos(pitch)
    c, s = math.cos(angle), math.sin(angle)
    side = max(MIN_SIZE, round(2 * extent))
    # Each step inverted, in reverse order. Work pixels are twice the output pixels.
    ox, oy = 2 * cx, 2 * cy
    from_work = np.array(
        [
            [c / sx, s / sx, -(c * ox + s * oy) / sx],
            [-s / sy, c / sy, (s * ox - c * oy) / sy],
            [0.0, 0.0, 1.0],
        ]
    )
    flatten = np.array(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.15 * math.sin(yaw), -0.15 * math.sin(pitch), 1.0]]
    )
    to_template = np.array([[side / 2, 0.0, side / 2], [0.0, side / 2, side / 2], [0.0, 0.0, 1.0]])
    inverse = to_template @ flatten @ from_work
    coeffs = tuple((inverse.ravel() / inverse[2, 2])[:8])
    count = variants(class_id)
    variant = int(rng.integers(count)) if count > 1 else 0  # other classes' draws stay as they were
    resized = _resized_template(class_id, 2 * size, side, variant)
    warped = resized.transform((2 * size, 2 * size), Image.PERSPECTIVE, coeffs, Image.NEAREST).reduce(2)
    rgba = np.asarray(warped).transpose(2, 0, 1).astype(np.float32, order="C")
    return rgba * np.float32(1 / 255), Placement(float(cx), float(cy), extent)


@functools.lru_cache(maxsize=4096)
def _resized_template(class_id: int, res: int, side: int, variant: int) -> Image.Image:
    # Sign sizes are whole pixels, so a few dozen sizes per class and drawing cover every image.
    return template(class_id, res, variant).resize((side, side), Image.BILINEAR)


@functools.lru_cache(maxsize=64)
def _noise_upsampler(cells: int, size: int) -> np.ndarray:
    """Interpolation matrix for value noise, with rows scaled so the result has unit variance."""
    m = gaussian_matrix(size, cells, 0.7)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-variance value noise of shape (1, size, size) with about `cells` blobs per side."""
    m = _noise_upsampler(cells, size)
    return (m @ rng.standard_normal((cells, cells), dtype=np.float32) @ m.T)[None]


_SKY = color((0.35, 0.45, 0.55), (0.75, 0.85, 1.0))
_BRIGHT_SKY = color((0.45, 0.55, 0.65), (0.85, 0.9, 1.0))
_LEAVES = color((0.08, 0.12, 0.03), (0.4, 0.45, 0.25))
_LEAF_GAPS = color((0.6, 0.65, 0.7), (0.95, 0.95, 1.0))
_FACADE = color((0.3, 0.28, 0.25), (0.85, 0.8, 0.75))
_WINDOWS = color((0.05, 0.05, 0.08), (0.45, 0.5, 0.55))
_SHADE = color((0.02, 0.02, 0.03), (0.18, 0.18, 0.2))
_ANY = color((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
_METAL = color((0.35, 0.35, 0.35), (0.75, 0.75, 0.75))
# Cumulative probabilities of the background kinds: sky, foliage, building, shade, gradient.
_BACKGROUND_CDF = np.cumsum([0.2, 0.3, 0.2, 0.2, 0.1])


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 (3, size, size) scene in [0, 1]; sky above foliage, buildings or dark surroundings."""
    rows, cols = grid(size)
    kind = int(np.searchsorted(_BACKGROUND_CDF, rng.random() * _BACKGROUND_CDF[-1]))
    if kind == 0:  # sky: blue or overcast grey, brighter towards the horizon
        scene = random_color(rng, _SKY) + uniform(rng, 0.0, 0.2) * rows + _smooth_noise(rng, size, 4) * 0.025
    elif kind == 1:  # foliage: green/brown with leafy mid-frequency texture and bright gaps
        leaves = _smooth_noise(rng, size, int(rng.integers(6, 16)))
        scene = random_color(rng, _LEAVES) * (1 + 0.3 * leaves) + _smooth_noise(rng, size, 5) * 0.045
        # Sky seen through the leaves, with soft edges.
        holes = _smooth_noise(rng, size, int(rng.integers(8, 20)))
        gaps = np.clip((holes - uniform(rng, 0.85, 1.6)) * 3, 0, 1)
        scene = scene + (random_color(rng, _LEAF_GAPS) - scene) * gaps
    elif kind == 2:  # building facade with a grid of windows
        scene = random_color(rng, _FACADE) + _smooth_noise(rng, size, 6) * 0.03
        period = uniform(rng, 0.25, 0.7)
        phase = rng.uniform(0, period, size=2)
        win_rows = ((rows[0] + phase[0]) % period) < period * uniform(rng, 0.35, 0.65)
        win_cols = ((cols[0] + phase[1]) % period) < period * uniform(rng, 0.35, 0.65)
        scene[:, win_rows & win_cols] = random_color(rng, _WINDOWS)[:, :, 0]
    elif kind == 3:  # dusk, tunnels, shade: mostly dark
        scene = random_color(rng, _SHADE) * (1 + 0.3 * _smooth_noise(rng, size, 6))
    else:  # anything else: a muted two-colour gradient
        muted = color_matrix(0.6, np.ones(3))
        a, b = (apply_color(muted, random_color(rng, _ANY)) for _ in range(2))
        theta = uniform(rng, 0, 2 * math.pi)
        scene = a + (b - a) * ((math.cos(theta) * cols + math.sin(theta) * rows) / 1.42 + 0.5)
    full = np.empty((3, size, size), dtype=np.float32)
    full[...] = scene
    scene = full
    if kind != 0 and rng.random() < 0.35:
        scene[:, : int(rng.integers(0, size // 2))] = random_color(rng, _BRIGHT_SKY)
    return scene


@functools.lru_cache(maxsize=64)
def _post_shading(width: int) -> np.ndarray:
    # A round post lit from the left darkens towards its right edge.
    return np.linspace(1.0, 0.55, width, dtype=np.float32)[None, None, :]


def add_clutter(rng: np.random.Generator, scene: np.ndarray, placement: Placement) -> None:
    """A post under the sign and sometimes a neighbouring sign or plate cut off by the image border."""
    size = scene.shape[1]
    cx, cy, extent = placement
    if rng.random() < 0.6:
        half = extent * uniform(rng, 0.03, 0.06)
        x0 = min(max(0, round(cx - half)), size - 1)
        x1 = min(size, max(round(cx + half), x0 + 1))
        shade = _post_shading(x1 - x0)
        scene[:, round(cy) :, x0:x1] = random_color(rng, _METAL) * shade
    if rng.random() < 0.25:
        rows, cols = grid(size)
        rows, cols = rows[0], cols[0]
        # Neighbouring signs on the same post sit directly above or below, mostly below.
        ny = (cy + extent * uniform(rng, 0.9, 1.1) * (1 if rng.random() < 0.6 else -1)) / size - 0.5
        nx = (cx + rng.normal(0, 0.05) * extent) / size - 0.5
        r = extent / size / 2
        if rng.random() < 0.5:  # white supplementary plate with a black edge
            dx, dy = np.abs(cols - nx), np.abs(rows - ny)
            scene[:, (dx < r * 0.95) & (dy < r * 0.5)] = 0.15
            scene[:, (dx < r * 0.9) & (dy < r * 0.45)] = 0.9
        else:  # another red-ringed or blue round sign
            dist = np.hypot(cols - nx, rows - ny)
            red = rng.random() < 0.6
            scene[:, dist < r] = np.array(RED if red else BLUE, dtype=np.float32)[:, None] / 255
            if red:
                scene[:, dist < r * 0.78] = 0.9
