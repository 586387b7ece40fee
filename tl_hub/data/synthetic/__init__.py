"""Procedural renderer for the 43 GTSRB traffic-sign classes, for training without the real dataset.

Each class has a clean template (shape, colours, pictogram) drawn once with PIL at 4x supersampling and
cached. Every image then warps a template (scale, offset, rotation, viewing angle), composites it over a
random scene (sky, foliage, facades, gradients, a post, neighbouring signs) and applies the damage seen
in GTSRB crops: faded paint, dark or washed-out exposure, backlighting, colour casts, uneven light, blur,
low source resolution, sensor noise and JPEG artefacts.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.synthetic.photometry import (
    MIN_SIZE,
    apply_color,
    color_matrix,
    optics,
    photometric,
    sensor_noise,
    to_pixels,
    uniform,
)
from tl_hub.data.synthetic.scene import add_clutter, background, warped_sign
from tl_hub.progress import Progress

__all__ = ["generate_signs", "render_sign"]

logger = logging.getLogger(__name__)

_NUM_CLASSES = len(GTSRB_CLASS_NAMES)


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")


def render_sign(class_id: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One RGB image (size x size) of a sign of class `class_id`, randomly varied using `rng`.

    The sign covers roughly 55-95% of the image width (about 76% on average, as in GTSRB crops).
    """
    return Image.fromarray(_render(class_id, rng, size), "RGB")


def _render(class_id: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """render_sign as a (size, size, 3) uint8 array, which is what generate_signs needs."""
    if not 0 <= class_id < _NUM_CLASSES:
        raise ValueError(f"class_id must be in 0..{_NUM_CLASSES - 1}, got {class_id}")
    _check_size(size)
    sign, placement = warped_sign(class_id, rng, size)
    alpha = sign[3:]
    # Paint fades and tints; retroreflective paint usually looks brighter than its surroundings.
    tint = uniform(rng, 0.85, 1.4) * (1 + 0.05 * rng.standard_normal(3))
    scene_gain = uniform(rng, 0.3, 0.9)
    backlit = rng.random() < 0.2
    if backlit:
        # A bright sky behind a sign in its own shadow, as in many GTSRB frames.
        tint, scene_gain = tint * uniform(rng, 0.3, 0.7), uniform(rng, 1.0, 1.6)
    sign_rgb = apply_color(color_matrix(uniform(rng, 0.0, 0.5), tint), sign[:3])

    scene = background(rng, size) * np.float32(scene_gain)
    if backlit:
        scene = np.minimum(scene, 1.0)
    add_clutter(rng, scene, placement)
    img = photometric(rng, sign_rgb + scene * (1 - alpha))
    pixels = to_pixels(sensor_noise(rng, optics(rng, img)), uniform(rng, 0.75, 1.35))
    if rng.random() < 0.2:
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=int(rng.integers(30, 85)))
        pixels = np.asarray(Image.open(buffer).convert("RGB"))
    return pixels


def generate_signs(
    num_per_class: int, seed: int = 0, size: int = 32, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Render a class-balanced synthetic GTSRB-style dataset.

    Returns (images uint8 array of shape (43 * num_per_class, size, size, 3), labels int64 array of
    shape (N,)). Classes are interleaved: image i shows class i % 43, so each consecutive block of 43
    images holds one sign of every class. Image i is
    `render_sign(i % 43, numpy.random.default_rng([seed, i]), size)` and depends on nothing else: the
    output is byte-identical across calls and processes, and a smaller `num_per_class` gives a prefix
    of a larger one. `seed` must be non-negative.
    """
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be at least 1, got {num_per_class}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    _check_size(size)
    total = _NUM_CLASSES * num_per_class
    labels = np.tile(np.arange(_NUM_CLASSES, dtype=np.int64), num_per_class)
    images = np.empty((total, size, size, 3), dtype=np.uint8)
    for i in Progress(range(total), desc="Rendering synthetic signs", unit="img", disable=not progress):
        images[i] = _render(int(labels[i]), np.random.default_rng([seed, i]), size)
    logger.debug("Rendered %d synthetic signs at %dx%d (seed %d)", total, size, size, seed)
    return images, labels
