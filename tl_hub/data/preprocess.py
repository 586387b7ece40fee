"""Model preprocessing: the one place where images become model inputs.

Two stages, shared by training, evaluation and inference:
1. `preprocess_image`: PIL image -> uint8 tensor (C, H, W) at the model's input size. Deterministic and
   per image, so a dataset is decoded and preprocessed once per run and kept as a uint8 tensor.
2. `normalize`: a uint8 batch -> the float batch the model eats.
In training, `tl_hub.data.augment.BatchAugment` takes stage 2's place: it augments and normalizes whole
uint8 batches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from tl_hub.config import PreprocessConfig
from tl_hub.data.images import load_image, to_rgb

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def preprocess_image(image: Image.Image, cfg: PreprocessConfig, side: int | None = None) -> torch.Tensor:
    """The deterministic part of preprocessing: resize, grayscale, equalize. Returns uint8 (C, H, W).

    `side` (the disk image cache's `storage_size`) keeps a larger centre square of the same resize, whose
    centre is the model's view.
    """
    image = model_view(image, cfg, crop=side)
    if cfg.grayscale:
        image = image.convert("L")
    if cfg.equalize != "none":
        image = equalize(image, cfg)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    # (C, H, W), transposed by numpy: far faster than torch's threaded uint8 permute-copy (BENCHMARKS.md)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())  # a C-order copy: writable


def model_view(
    image: Image.Image, cfg: PreprocessConfig, size: int | None = None, crop: int | None = None
) -> Image.Image:
    """The RGB region the model sees, squashed or centre-cropped as `cfg` says, `size` pixels square.

    `size` defaults to the model's input size; a larger one gives the same view at display resolution.
    `crop` keeps a larger centre square of the resized image instead (a centre-cropping `cfg` only).
    """
    image = to_rgb(ImageOps.exif_transpose(image))  # phone photos store their rotation in EXIF
    size = size or cfg.input_size
    if cfg.crop_pct is None:
        return image.resize((size, size), _RESAMPLE[cfg.interpolation])
    # timm's eval transform, by its own calls: the shorter side to floor(size / crop_pct), the longer one
    # truncated, then a centre crop offset by round((side - size) / 2). Rounding instead shifts the crop
    # by a pixel on odd-sized photos.
    interpolation = InterpolationMode(cfg.interpolation)
    image = TF.resize(image, math.floor(size / cfg.crop_pct), interpolation)
    return TF.center_crop(image, crop or size)


def decoded_side(cfg: PreprocessConfig) -> int:
    """The shorter side the model's view is cut from (`load_image`'s `draft`): the resize before the
    centre crop, or the input side for a squash."""
    return cfg.input_size if cfg.crop_pct is None else math.floor(cfg.input_size / cfg.crop_pct)


def storage_size(cfg: PreprocessConfig) -> int:
    """The side at which a disk image cache stores images: the centre square of timm's resize before the
    centre crop (the shorter side to input_size / crop_pct), so random-resized crops can reach the margin
    the evaluation crop leaves out; the input size when the preprocessing keeps no margin or equalizes the
    whole view."""
    if cfg.crop_pct is None or cfg.equalize != "none":
        return cfg.input_size
    resized = math.floor(cfg.input_size / cfg.crop_pct)
    # A margin of a multiple of 4 pixels: then the centre crop of the stored centre square takes the very
    # offsets of one centre crop (torchvision rounds half offsets to even, so an odd half-margin would
    # shift the view by a pixel).
    return cfg.input_size + (resized - cfg.input_size) // 4 * 4


def center_view(batch: torch.Tensor, size: int) -> torch.Tensor:
    """The centre `size` x `size` of a (B, C, S, S) batch stored at `storage_size`: with the offset that
    torchvision's center_crop takes, so the view equals `preprocess_image` pixel for pixel."""
    if batch.shape[-1] == size:
        return batch
    offset = center_offset(batch.shape[-1], size)
    return batch[..., offset : offset + size, offset : offset + size]


def center_offset(side: int, size: int) -> int:
    """Where the centre `size` x `size` of a `side` x `side` image starts, as torchvision's center_crop
    rounds it."""
    return int(round((side - size) / 2.0))  # noqa: RUF046 - torchvision's own expression


def equalize(image: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Histogram-equalize the luminance of an L or RGB image, globally or with CLAHE."""
    if image.mode == "RGB":  # equalize brightness only, keeping the colours
        y, cb, cr = image.convert("YCbCr").split()
        return Image.merge("YCbCr", (equalize(y, cfg), cb, cr)).convert("RGB")
    if cfg.equalize == "global":
        return ImageOps.equalize(image)
    import cv2  # imported here: only CLAHE models need OpenCV loaded

    # OpenCV's own thread pool does not survive a fork: a decoding worker forked from a process whose
    # pool had started hung on its first CLAHE. One thread never starts the pool (tiles this small gain
    # nothing from threads).
    cv2.setNumThreads(1)
    clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip_limit, tileGridSize=(cfg.clahe_grid, cfg.clahe_grid))
    return Image.fromarray(clahe.apply(np.asarray(image, dtype=np.uint8)))


def normalize(batch: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255], or float in [0, 1] -> normalized float32."""
    x = batch.float()
    if batch.dtype == torch.uint8:
        x = x / 255.0
    mean = torch.tensor(cfg.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def model_input(images: list[Any], cfg: PreprocessConfig) -> torch.Tensor:
    """Images in any `load_image` form -> the normalized float batch the model eats."""
    return normalize(torch.stack([preprocess_image(load_image(im), cfg) for im in images]), cfg)
