"""Training-time augmentation of whole uint8 batches, from stored images to normalized model inputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from tl_hub.config import AugConfig
from tl_hub.data.preprocess import center_offset, center_view

Uniform = Callable[[float, float], torch.Tensor]  # per-image draws in [low, high)


class ColourMap(NamedTuple):
    """Per-image affine colour maps: image i becomes `matrix[i] @ x + slope[i] * mean(x) + bias`, each
    channel clamped to its `bounds` (the normalized image of [0, 1]) when jitter can leave them."""

    matrix: torch.Tensor  # (B, C, C)
    slope: torch.Tensor | None  # (B, C, 1); None: no contrast jitter
    bias: torch.Tensor  # (C, 1)
    bounds: list[tuple[float, float]] | None

    def apply(self, images: Sequence[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """Map each image (C, H, W, any dtype) into `out` (B, C, H, W float), one image at a time while it
        is in the CPU's cache: its colours and a row of ones (for the offset) times one (C, C + 1) matrix
        (BENCHMARKS.md times it against the batch-wide passes it replaced)."""
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
        (a buffer reused from batch to batch: on a CPU a fresh batch costs page faults, BENCHMARKS.md)."""
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
        uint8 on a CPU (torch's vectorized kernel); other devices resize in float, as the uint8 kernel exists
        only for CPUs."""
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
