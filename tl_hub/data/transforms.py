"""The one place where images become model inputs.

Two stages, shared by training, evaluation and inference:
1. `preprocess_image`: PIL image -> uint8 tensor (C, H, W) at the model's input size. Deterministic and
   per image, so a dataset is decoded and preprocessed once per run and kept as a uint8 tensor.
2. `normalize`: a uint8 batch -> the float batch the model eats.
Training inserts `BatchAugment` between the two, on whole batches of tensors.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable
from os import PathLike
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from tl_hub.config import AugConfig, PreprocessConfig
from tl_hub.errors import ImageError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"  # what read_image's errors suggest

ImageInput = Image.Image | str | PathLike | bytes | np.ndarray | dict


def load_image(obj: ImageInput, max_pixels: int | None = None, draft: int | None = None) -> Image.Image:
    """Open an image given as a PIL image, a path, encoded bytes, an HWC array or a datasets dict.

    `max_pixels` bounds width x height (an `ImageError` beyond it); encoded images are checked from the
    header, before any pixel is decoded. `draft` (a side in pixels) lets libjpeg decode a JPEG at least
    twice that side at 1/2, 1/4 or 1/8 scale, never below `draft`: 7x faster on 2000x1500 photos, within
    half a grey level of full decoding once resized (BENCHMARKS.md). The decoders of training data use it.
    """
    if isinstance(obj, dict):  # datasets' undecoded Image feature: {"bytes": ..., "path": ...}
        obj = obj["bytes"] if obj.get("bytes") is not None else obj["path"]
    if isinstance(obj, bytes):
        obj = io.BytesIO(obj)
    if isinstance(obj, Image.Image | np.ndarray):
        image = obj if isinstance(obj, Image.Image) else Image.fromarray(obj)
        _check_pixels(image, max_pixels)
        return image
    image = Image.open(obj)
    _check_pixels(image, max_pixels)
    if draft is not None and image.format == "JPEG" and min(image.size) >= 2 * draft:
        image.draft(image.mode, (draft, draft))
    image.load()  # decode now, so a corrupt file fails here and not later
    return image


def read_image(obj: ImageInput, max_pixels: int | None = None) -> Image.Image:
    """`load_image` for untrusted input: any failure becomes an `ImageError` with a one-line reason.

    `max_pixels` bounds width x height, checked from the header before any pixel is decoded, so a
    decompression bomb (a few KB that decode to gigabytes) is refused without being expanded.
    """
    if obj is None or (isinstance(obj, bytes | str) and len(obj) == 0):
        raise ImageError(f"no image was given: upload a photo ({FORMATS})")
    if isinstance(obj, str | PathLike) and os.path.isfile(obj) and os.path.getsize(obj) == 0:
        raise ImageError(f"the file is empty (0 bytes): upload a photo ({FORMATS})")
    try:
        image = load_image(obj, max_pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own limit, when it is below `max_pixels`
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels[1]) / 1e6:.0f} megapixels" if pixels else "too many pixels"
        raise ImageError(f"the image has {size}, too many to decode safely: downscale it") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable or truncated files
        raise ImageError(f"the file is not a readable image ({type(e).__name__}): use a {FORMATS}") from None
    w, h = image.size
    if w < 1 or h < 1:
        raise ImageError(f"the image is {w}x{h} pixels: it has no pixels to classify")
    return image


def _check_pixels(image: Image.Image, max_pixels: int | None) -> None:
    w, h = image.size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over this app's limit of "
            f"{max_pixels / 1e6:.0f}: downscale it and try again"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, P, RGBA, CMYK, I;16, ...) to 8-bit RGB; transparency becomes white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        hi = a.max() if a.size and a.max() > 0 else 1.0
        return Image.fromarray(np.clip(a * (255.0 / hi), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


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
    # (C, H, W), transposed by numpy: torch's threaded uint8 permute-copy took 6 ms an image here (0.07)
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
    offset = int(round((batch.shape[-1] - size) / 2.0))  # noqa: RUF046 - torchvision's own expression
    return batch[..., offset : offset + size, offset : offset + size]


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


class BatchAugment:
    """Random-resized crop, rotation / zoom / shift / flip, blur, contrast, brightness and saturation on a
    float batch in [0, 1].

    Each image draws its own parameters from `generator`, so one affine `grid_sample` and one grouped
    convolution augment the whole batch: no per-image Python work, on whatever device the batch is on.
    A batch stored larger than `size` (a disk cache's margin) comes out `size` x `size`: random-resized
    crops are taken from the whole stored image, every other transform from its centre view.
    """

    def __init__(self, cfg: AugConfig):
        self.cfg = cfg

    def __call__(self, x: torch.Tensor, generator: torch.Generator, size: int | None = None) -> torch.Tensor:
        cfg = self.cfg
        size = size or x.shape[-1]
        if not cfg.enabled:
            return center_view(x, size)
        b, source = x.shape[0], x.untyped_storage().data_ptr()  # the caller's batch is never changed in place

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(b, generator=generator)

        if not (cfg.rotation > 0 or cfg.scale != (1.0, 1.0) or cfg.translate > 0 or cfg.hflip or cfg.crops):
            x = center_view(x, size)
        else:
            angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
            zoom = uniform(*cfg.scale)
            shift = uniform(-cfg.translate, cfg.translate), uniform(-cfg.translate, cfg.translate)
            flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if cfg.hflip else 1.0
            # grid_sample maps output coords to input coords: the inverse transform, in [-1, 1] units.
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack(
                [
                    torch.stack([cos * flip, -sin, shift[0] * 2], dim=1),
                    torch.stack([sin * flip, cos, shift[1] * 2], dim=1),
                ],
                dim=1,
            )  # (B, 2, 3)
            if cfg.crops:
                theta = self._crop(uniform) @ torch.cat(
                    [theta, torch.tensor([[[0.0, 0.0, 1.0]]]).expand(b, 1, 3)], 1
                )
            elif size != x.shape[-1]:  # the centre view of a stored margin: a size / stored-side scale
                theta = theta * (size / x.shape[-1])
            grid = F.affine_grid(theta.to(x), [b, x.shape[1], size, size], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

        if cfg.blur_prob > 0:
            x = self._blur(x, uniform(*cfg.blur_sigma), torch.rand(b, generator=generator) < cfg.blur_prob)
        if cfg.contrast > 0 or cfg.brightness > 0 or cfg.saturation > 0:
            x = self._photometric(x.clone() if x.untyped_storage().data_ptr() == source else x, uniform)
        return x

    def _photometric(self, x: torch.Tensor, uniform: Callable[[float, float], torch.Tensor]) -> torch.Tensor:
        """Contrast, brightness and saturation jitter, in place on `x` (a batch this call owns): at 224x224
        a batch's jitter took 120 ms out of place, a few passes over 40 MB each."""
        cfg = self.cfg
        if cfg.contrast > 0:  # around each image's own mean brightness
            factor = uniform(1 - cfg.contrast, 1 + cfg.contrast).to(x)[:, None, None, None]
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x.sub_(mean).mul_(factor).add_(mean).clamp_(0, 1)
        if cfg.brightness > 0:
            x.mul_(uniform(1 - cfg.brightness, 1 + cfg.brightness).to(x)[:, None, None, None]).clamp_(0, 1)
        if cfg.saturation > 0 and x.shape[1] == 3:  # blend with the luma (ITU-R 601), as torchvision does
            factor = uniform(1 - cfg.saturation, 1 + cfg.saturation).to(x)[:, None, None, None]
            luma = (x[:, 0:1] * 0.299).add_(x[:, 1:2], alpha=0.587).add_(x[:, 2:3], alpha=0.114)
            x.sub_(luma).mul_(factor).add_(luma).clamp_(0, 1)
        return x

    def _crop(self, uniform: Callable[[float, float], torch.Tensor]) -> torch.Tensor:
        """(B, 2, 3) maps from the output to a random crop of the input (random-resized crop): an area
        fraction in `crop_scale`, an aspect ratio in `crop_ratio` (log-uniform), anywhere inside the image."""
        area = uniform(*self.cfg.crop_scale)
        ratio = torch.exp(uniform(*(math.log(r) for r in self.cfg.crop_ratio)))
        width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
        cx, cy = uniform(-1.0, 1.0) * (1 - width), uniform(-1.0, 1.0) * (1 - height)
        zero = torch.zeros_like(width)
        return torch.stack([torch.stack([width, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1)

    @staticmethod
    def _blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur with a per-image sigma; images with apply=False are untouched."""
        b, c, h, w = x.shape
        radius = max(1, math.ceil(2 * float(sigma.max())))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)  # (B, K)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        identity = (offsets == 0).float().expand(b, -1)
        kernel = torch.where(apply[:, None], kernel, identity).to(x)
        kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (image, channel) group
        k = kernel.shape[1]
        y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
        y = F.conv2d(y, kernel.view(b * c, 1, 1, k), groups=b * c)
        y = F.conv2d(y, kernel.view(b * c, 1, k, 1), groups=b * c)
        return y.view(b, c, h, w)
