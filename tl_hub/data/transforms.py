"""The one place where images become model inputs.

Two stages, shared by training, evaluation and inference:
1. `preprocess_image`: PIL image -> uint8 tensor (C, H, W) at the model's input size. Deterministic and
   per image, so a dataset is decoded and preprocessed once per run and kept as a uint8 tensor.
2. `normalize`: a uint8 batch -> the float batch the model eats.
In training, `BatchAugment` takes stage 2's place: it augments and normalizes whole uint8 batches.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any, NamedTuple

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

ImageInput = Image.Image | str | PathLike | bytes | np.ndarray | torch.Tensor | dict
# What an image may be given as, in the words of read_image's errors.
IMAGE_KINDS = "a path, a PIL image, encoded bytes, a numpy HxWxC array or a torch CHW tensor"
Uniform = Callable[[float, float], torch.Tensor]  # per-image draws in [low, high)


def load_image(obj: ImageInput, max_pixels: int | None = None, draft: int | None = None) -> Image.Image:
    """Open an image given as a PIL image, a path, encoded bytes, an HWC array or a datasets dict.

    `max_pixels` bounds width x height (an `ImageError` beyond it); encoded images are checked from the
    header, before any pixel is decoded. `draft` (a side in pixels) lets libjpeg decode a JPEG at least
    twice that side at 1/2, 1/4 or 1/8 scale, never below `draft`: 7x faster on 2000x1500 photos, within
    half a grey level of full decoding once resized (BENCHMARKS.md). The decoders of training data use it.
    """
    if isinstance(obj, dict):  # datasets' undecoded Image feature: {"bytes": ..., "path": ...}
        obj = obj["bytes"] if obj.get("bytes") is not None else obj["path"]
    if isinstance(obj, bytes | bytearray | memoryview):
        obj = io.BytesIO(obj)
    if isinstance(obj, torch.Tensor):
        obj = tensor_array(obj)
    if isinstance(obj, Image.Image | np.ndarray):
        image = obj if isinstance(obj, Image.Image) else array_image(obj)
        _check_pixels(image, max_pixels)
        return image
    image = Image.open(obj)
    _check_pixels(image, max_pixels)
    if draft is not None and image.format == "JPEG" and min(image.size) >= 2 * draft:
        image.draft(image.mode, (draft, draft))
    image.load()  # decode now, so a corrupt file fails here and not later
    return image


def array_image(a: np.ndarray) -> Image.Image:
    """An HxW or HxWxC (C = 1, 3 or 4) array as a PIL image: uint8 as it is, floats in [0, 1] scaled to 0-255.
    Anything else is an `ImageError` naming the dtype or the shape."""
    shape = "x".join(map(str, a.shape))
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise ImageError(
            f"an array of shape {shape} is not an image: expected HxW or HxWxC with C = 1, 3 or 4 (one "
            "image; for several, pass a list)"
        )
    if a.size == 0:
        raise ImageError(f"the image is {shape}: it has no pixels to classify")
    if a.dtype.kind == "f":
        if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise ImageError(
                f"a {a.dtype} image array must hold values in [0, 1] (this one: {a.min()} to {a.max()}): "
                "scale it, or pass uint8 (0-255)"
            )
        a = np.rint(a * 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(
            f"image arrays of dtype {a.dtype} are not supported: pass uint8 (0-255) or floats in [0, 1]"
        )
    return Image.fromarray(a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else np.ascontiguousarray(a))


def tensor_array(t: torch.Tensor) -> np.ndarray:
    """A CHW (or HW) torch tensor as the HWC array `array_image` reads: uint8, or floats in [0, 1]."""
    if t.ndim not in (2, 3) or (t.ndim == 3 and t.shape[0] not in (1, 3, 4)):
        raise ImageError(
            f"a tensor of shape {tuple(t.shape)} is not an image: expected CxHxW with C = 1, 3 or 4 (one "
            "image; for several, pass a list)"
        )
    if not (t.dtype == torch.uint8 or t.is_floating_point()):
        raise ImageError(
            f"image tensors of dtype {t.dtype} are not supported: pass uint8 (0-255) or floats in [0, 1]"
        )
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()  # numpy has no bfloat16
    return t.permute(1, 2, 0).numpy() if t.ndim == 3 else t.numpy()


def open_image_file(path: str | PathLike) -> io.BufferedReader:
    """A path opened for reading, if it is a regular, non-empty file; `ImageError` for a missing file, a
    directory, a named pipe, a device or a socket. Checked before opening (opening a pipe would wait for a
    writer), and again on the descriptor, opened without blocking."""
    name = os.fspath(path)
    try:
        mode, size = (st := os.stat(name)).st_mode, st.st_size
    except OSError as e:
        raise ImageError(f"cannot open {name!r} ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(mode):
        raise ImageError(f"{name!r} is {_file_kind(mode)}, not an image file: pass the path of a {FORMATS}")
    if size == 0:
        raise ImageError(f"the file is empty (0 bytes): upload a photo ({FORMATS})")
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ImageError(f"cannot open {name!r} ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the two looks
        os.close(fd)
        raise ImageError(f"{name!r} is not a regular file: pass the path of a {FORMATS}")
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_image(obj: ImageInput, max_pixels: int | None = None) -> Image.Image:
    """`load_image` for untrusted input: any failure becomes an `ImageError` with a one-line reason.

    Accepts what `ImageInput` says, and refuses anything else by name: a path (a regular file only, never a
    pipe or a device), a PIL image, encoded bytes, a numpy HxW(xC) array (uint8, or floats in [0, 1]), a torch
    CxHxW tensor (the same dtypes) or datasets' {"bytes", "path"} dict; an image without pixels is refused.
    `max_pixels` bounds width x height, checked from the header before any pixel is decoded, so a
    decompression bomb (a few KB that decode to gigabytes) is refused without being expanded.
    """
    if obj is None or (isinstance(obj, bytes | bytearray | memoryview | str) and len(obj) == 0):
        raise ImageError(f"no image was given: upload a photo ({FORMATS})")
    if isinstance(obj, dict) and isinstance(obj.get("bytes") or obj.get("path"), bytes | str):
        obj = obj["bytes"] if obj.get("bytes") else obj["path"]
    if not isinstance(
        obj, Image.Image | str | PathLike | bytes | bytearray | memoryview | np.ndarray | torch.Tensor
    ):
        raise ImageError(f"cannot read an image from a {type(obj).__name__}: pass {IMAGE_KINDS}")
    try:
        if isinstance(obj, str | PathLike):
            with open_image_file(obj) as f:
                image = load_image(f, max_pixels)
        else:
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


class ColourMap(NamedTuple):
    """Per-image affine colour maps: image i becomes `matrix[i] @ x + slope[i] * mean(x) + bias`, each
    channel clamped to its `bounds` (the normalized image of [0, 1]) when jitter can leave them."""

    matrix: torch.Tensor  # (B, C, C)
    slope: torch.Tensor | None  # (B, C, 1); None: no contrast jitter
    bias: torch.Tensor  # (C, 1)
    bounds: list[tuple[float, float]] | None

    def apply(self, images: Sequence[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """Map each image (C, H, W, any dtype) into `out` (B, C, H, W float), one image at a time while it
        is in the CPU's cache: its colours and a row of ones (for the offset) times one (C, C + 1) matrix.
        About 10 ms for 64 images at 224x224 on 2 cores; the batch-wide passes this replaced took 86 ms,
        with the crops' `grid_sample`."""
        b, c = out.shape[:2]
        scratch = torch.ones(c + 1, out[0, 0].numel(), device=out.device)
        maps = torch.cat([self.matrix, self.bias.expand(b, c, 1)], 2)  # (B, C, C + 1)
        for i, image in enumerate(images):
            x = scratch[:c].copy_(image.reshape(c, -1))
            if self.slope is not None:  # contrast pivots on the image's own mean
                maps[i, :, c:].addcmul_(self.slope[i], x.mean())
            torch.mm(maps[i], scratch, out=out[i].view(c, -1))
        for channel, (low, high) in enumerate(self.bounds or []):
            out[:, channel].clamp_(low, high)
        return out


class BatchAugment:
    """Training-time augmentation of whole batches, from uint8 (or float) images to model inputs.

    Two paths, by kind of image:
    - Signs (rotation, zoom, shift, blur): one affine `grid_sample` and one grouped convolution warp and blur
      the whole float batch.
    - Photos (random-resized crops, flips): each image's crop is cut as a box of whole pixels and resized with
      antialiasing, as torchvision's RandomResizedCrop does, in uint8 on a CPU (torch's vectorized kernel).

    Then brightness, contrast and saturation jitter and the normalization run as one per-image affine map
    of the colours, clamped once. Every random draw comes from `generator` (a CPU generator), so a run is
    reproducible on any device; a batch stored larger than `size` (a disk cache's margin) comes out
    `size` x `size`: crops reach the whole stored image, every other transform starts from its centre view.
    """

    def __init__(self, cfg: AugConfig):
        self.cfg = cfg
        self.warps = cfg.rotation > 0 or cfg.scale != (1.0, 1.0) or cfg.translate > 0 or cfg.blur_prob > 0

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        size: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Augmented float images: in [0, 1], or normalized by `mean` and `std` when given. The caller's
        batch is never changed; the result is written into `out` when it has the result's shape and device
        (a buffer reused from batch to batch: on a CPU a fresh 38 MB batch costs 10 ms of page faults)."""
        cfg = self.cfg
        size = size or x.shape[-1]
        if mean is None or std is None:
            mean, std = (0.0,) * x.shape[1], (1.0,) * x.shape[1]
            if not cfg.enabled and x.is_floating_point():
                return center_view(x, size)
        shape = (x.shape[0], x.shape[1], size, size)
        if out is None or out.shape != shape or out.device != x.device or out.dtype != torch.float32:
            out = torch.empty(shape, device=x.device)

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(x.shape[0], generator=generator)

        if self.warps:
            x = self._warp(x.float().div_(255.0) if x.dtype == torch.uint8 else x, uniform, size)
        elif cfg.crops or cfg.hflip:
            images = self._resized_crops(x, uniform, size)
            return self._colour(uniform, x, mean, std).apply(images, out)
        else:
            x = center_view(x, size)
        colour = self._colour(uniform, x, mean, std)
        if colour.bounds is None:  # no jitter: normalize's own operations
            mean_, std_ = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (mean, std))
            return torch.div(x.float() / (255.0 if x.dtype == torch.uint8 else 1.0) - mean_, std_, out=out)
        return colour.apply(x.unbind(), out)

    def _warp(self, x: torch.Tensor, uniform: Uniform, size: int) -> torch.Tensor:
        """Rotation, zoom, shift and flip in one `grid_sample` (random-resized crops too, if asked), then
        blur: the signs' augmentation, on a float batch in [0, 1]."""
        cfg, b = self.cfg, x.shape[0]
        if not (cfg.rotation > 0 or cfg.scale != (1.0, 1.0) or cfg.translate > 0 or cfg.hflip or cfg.crops):
            x = center_view(x, size)
            return self._blur(x, uniform(*cfg.blur_sigma), uniform(0.0, 1.0) < cfg.blur_prob)
        angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
        zoom = uniform(*cfg.scale)
        shift = uniform(-cfg.translate, cfg.translate), uniform(-cfg.translate, cfg.translate)
        flip = torch.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if cfg.hflip else 1.0
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
            area, ratio = self._crop_shapes(uniform)
            width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
            cx, cy = uniform(-1.0, 1.0) * (1 - width), uniform(-1.0, 1.0) * (1 - height)
            zero = torch.zeros_like(width)
            crop = torch.stack([torch.stack([width, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1)
            theta = crop @ torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]]).expand(b, 1, 3)], 1)
        elif size != x.shape[-1]:  # the centre view of a stored margin: a size / stored-side scale
            theta = theta * (size / x.shape[-1])
        grid = F.affine_grid(theta.to(x), [b, x.shape[1], size, size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if cfg.blur_prob > 0:
            x = self._blur(x, uniform(*cfg.blur_sigma), uniform(0.0, 1.0) < cfg.blur_prob)
        return x

    def _crop_shapes(self, uniform: Uniform) -> tuple[torch.Tensor, torch.Tensor]:
        """A random-resized crop's area fraction (uniform in `crop_scale`) and aspect ratio, width / height
        (log-uniform in `crop_ratio`), per image."""
        area = uniform(*self.cfg.crop_scale)
        return area, torch.exp(uniform(*(math.log(r) for r in self.cfg.crop_ratio)))

    def _resized_crops(self, x: torch.Tensor, uniform: Uniform, size: int) -> list[torch.Tensor]:
        """Random-resized crops (or the centre view) and flips, one (C, size, size) image at a time: each
        crop is a box of whole pixels anywhere in the stored image, resized with antialiasing. uint8 stays
        uint8 on a CPU (torch's vectorized kernel, 0.2 ms an image at 224x224); other devices resize in
        float, as the uint8 kernel exists only for CPUs."""
        cfg, b, side = self.cfg, x.shape[0], x.shape[-1]
        if cfg.crops:
            area, ratio = self._crop_shapes(uniform)
            width = ((area * ratio).sqrt() * side).round().clamp(1, side).long()
            height = ((area / ratio).sqrt() * side).round().clamp(1, side).long()
            left = (uniform(0.0, 1.0) * (side - width + 1)).long().clamp(max=side - width)
            top = (uniform(0.0, 1.0) * (side - height + 1)).long().clamp(max=side - height)
            boxes = torch.stack([top, left, height, width], 1).tolist()
        else:
            offset = center_offset(side, size)
            boxes = [[offset, offset, size, size]] * b
        flips = (uniform(0.0, 1.0) < 0.5).tolist() if cfg.hflip else [False] * b
        dtype = x.dtype if x.device.type == "cpu" else torch.float32
        images = []
        for i, ((top, left, height, width), flip) in enumerate(zip(boxes, flips, strict=True)):
            crop = x[i : i + 1, :, top : top + height, left : left + width].to(dtype)
            if (height, width) != (size, size):
                crop = F.interpolate(
                    crop.contiguous(memory_format=torch.channels_last),
                    size=(size, size),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )
            images.append(crop[0].flip(-1) if flip else crop[0])
        return images

    def _colour(
        self, uniform: Uniform, x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
    ) -> ColourMap:
        """Each image's colour map: contrast (around the image's mean), brightness and saturation (a blend
        with the ITU-R 601 luma, as torchvision's) jitter, then normalization. The three are affine in the
        colours, so they compose into one 3x3 matrix and one offset an image."""
        cfg, b, c = self.cfg, x.shape[0], x.shape[1]
        unit = 255.0 if x.dtype == torch.uint8 else 1.0
        saturate = cfg.saturation > 0 and c == 3
        jitter = cfg.contrast > 0 or cfg.brightness > 0 or saturate

        def factor(amount: float) -> torch.Tensor:
            return uniform(1 - amount, 1 + amount) if amount > 0 else torch.ones(b)

        contrast, brightness = factor(cfg.contrast), factor(cfg.brightness)
        saturation = factor(cfg.saturation) if saturate else torch.ones(b)
        mean_, std_ = torch.tensor(mean).view(1, c, 1), torch.tensor(std).view(1, c, 1)
        # x' = b * c * (s * x + (1 - s) * luma(x)) + b * (1 - c) * mean(x), then (x' / unit - mean) / std
        gain = (brightness * contrast).view(b, 1, 1) / (unit * std_)
        luma = torch.tensor([0.299, 0.587, 0.114] if c == 3 else [1.0])
        blend = saturation.view(b, 1, 1) * torch.eye(c) + (1 - saturation).view(b, 1, 1) * luma.view(1, 1, c)
        slope = (brightness * (1 - contrast)).view(b, 1, 1) / (unit * std_) if cfg.contrast > 0 else None
        bounds = [(-m / s, (1 - m) / s) for m, s in zip(mean, std, strict=True)] if jitter else None
        device = x.device
        return ColourMap(
            (gain * blend).to(device),
            None if slope is None else slope.to(device),
            (-mean_ / std_)[0].to(device),
            bounds,
        )

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
