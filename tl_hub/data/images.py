"""Reading images: files, encoded bytes, arrays, tensors and datasets' dicts become PIL images, in RGB.

`read_image` is the door for untrusted input (the Space, `Predictor`): every failure is one `ImageError`
line. `load_image` is the fast path for training data, whose files were listed by the dataset.
"""

from __future__ import annotations

import io
import os
import re
import stat
from os import PathLike

import numpy as np
import torch
from PIL import Image

from tl_hub.errors import ImageError

FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"  # what read_image's errors suggest

ImageInput = Image.Image | str | PathLike | bytes | np.ndarray | torch.Tensor | dict
# What an image may be given as, in the words of read_image's errors.
IMAGE_KINDS = "a path, a PIL image, encoded bytes, a numpy HxWxC array or a torch CHW tensor"


def load_image(obj: ImageInput, max_pixels: int | None = None, draft: int | None = None) -> Image.Image:
    """Open an image given as a PIL image, a path, encoded bytes, an HWC array or a datasets dict.

    `max_pixels` bounds width x height (an `ImageError` beyond it); encoded images are checked from the
    header, before any pixel is decoded. `draft` (a side in pixels) lets libjpeg decode a JPEG at least
    twice that side at 1/2, 1/4 or 1/8 scale, never below `draft`: much faster on large photos, within a
    grey level of full decoding once resized (BENCHMARKS.md). The decoders of training data use it.
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
