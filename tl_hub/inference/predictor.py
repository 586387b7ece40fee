"""Predictor: one image in, the top-k {label: probability} out, with the model's own preprocessing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from tl_hub.data.images import ImageInput, read_image
from tl_hub.data.preprocess import model_input
from tl_hub.data.views import averaged_views
from tl_hub.errors import ConfigError
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.load import from_pretrained

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """A trained model with the preprocessing from its config.json.

    `compile=True` is the serving fast path: channels_last weights and inputs, and the forward through
    `torch.compile` with Inductor's weight freezing (constant weights folded and pre-packed for oneDNN). On a
    2-core AVX2 CPU it runs tl_hub's VGG16 1.1-1.3x faster than eager, with logits equal to 1e-7
    (BENCHMARKS.md). The first call compiles (about 25 s for VGG16, seconds once Inductor's disk cache holds
    it; `warmup()` does it ahead of time). If compiling fails (no C++ compiler, say), the predictor falls back
    to eager mode with a warning.
    """

    def __init__(
        self,
        model: nn.Module,
        config: ReleaseConfig,
        device: str | torch.device | None = None,
        compile: bool = False,
    ):
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.config = config
        self.label_names: list[str] = list(config.label_names)
        self.preprocess = config.preprocess
        self.source: str | None = None  # the repo id or directory it came from, when loaded from one
        self._forward: nn.Module = self.model
        self._channels_last = compile
        if compile:
            self.model = self.model.to(memory_format=torch.channels_last)
            self._forward = torch.compile(self.model, options={"freezing": True})

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | Path,
        device: str | torch.device | None = None,
        compile: bool = False,
        api: HfApi | None = None,
    ) -> Predictor:
        """Load a release directory or a Hub repo id produced by tl_hub (`api`: the Hub client to use)."""
        model, config = from_pretrained(repo_or_dir, api=api)
        predictor = cls(model, config, device, compile)
        predictor.source = str(repo_or_dir)
        return predictor

    def inputs(self, images: list[ImageInput]) -> torch.Tensor:
        """The normalized batch (B, C, H, W) the model eats, on the model's device.

        Each image is read by `tl_hub.data.images.read_image`: a path (regular files only), a PIL image,
        encoded bytes, a numpy HxW(xC) array (uint8, or floats in [0, 1]) or a torch CxHxW tensor; anything
        else, or an image without pixels, is an `ImageError` saying what was given.
        """
        if not isinstance(images, list | tuple):
            raise ConfigError(
                f"images: expected a list of images, got a {type(images).__name__} (for one image, call the "
                "predictor itself: predictor(image))"
            )
        return model_input([read_image(image) for image in images], self.preprocess).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a prepared batch `x` (B, C, H, W), through the fast path when compiled; with the
        release's test-time views (`tta_scales`), the log of the softmax averaged over them."""
        return averaged_views(self._logits, x, self.preprocess.tta_scales)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            return self._forward(x)
        except Exception as e:  # torch.compile fails late, at the first call: keep serving in eager mode
            if self._forward is self.model:
                raise
            logger.warning("torch.compile failed (%s: %s): running in eager mode", type(e).__name__, e)
            self._forward = self.model
            return self.model(x)

    @torch.inference_mode()
    def logits(self, images: list[ImageInput]) -> torch.Tensor:
        """Raw logits (B, num_classes) for a list of images (see `inputs`); (0, num_classes) for none."""
        if isinstance(images, list | tuple) and not images:
            return torch.empty(0, len(self.label_names))
        return self.forward(self.inputs(images)).float().cpu()

    def warmup(self) -> None:
        """Run one blank image through the model: compiles it now rather than on the first request."""
        self.logits([Image.new("RGB", (self.preprocess.input_size,) * 2)])

    def predict(self, images: list[ImageInput], top_k: int = 5) -> list[dict[str, float]]:
        """Top-k {label: probability} per image, most probable first (k at most the number of classes); an
        empty list for an empty list."""
        _check_index("top_k", top_k, 1, None, "a positive integer")
        probs = self.logits(images).softmax(dim=1)
        k = min(int(top_k), probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        return [
            {self.label_names[i]: float(p) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)}
            for row_p, row_i in zip(values, indices, strict=True)
        ]

    def __call__(self, image: ImageInput, top_k: int = 5) -> dict[str, float]:
        return self.predict([image], top_k)[0]

    def explain(self, image: ImageInput, class_index: int | None = None, size: int = 256) -> Image.Image:
        """A Grad-CAM heatmap of `class_index` (default: the top-1 class) over the region the model saw,
        `size` pixels square."""
        from tl_hub.inference.explain import grad_cam, overlay
        from tl_hub.models import get_architecture

        n = len(self.label_names)
        if class_index is not None:
            _check_index("class_index", class_index, 0, n - 1, f"a class index from 0 to {n - 1}, or None")
        _check_index("size", size, 8, 4096, "an integer from 8 to 4096")
        image = read_image(image)
        base = get_architecture(self.config.architecture).base
        cam, _ = grad_cam(self.model, self.inputs([image]), class_index, base)
        return overlay(image, cam, self.preprocess, size)


def _check_index(name: str, value: object, low: int, high: int | None, expected: str) -> None:
    """A ConfigError (a ValueError) unless `value` is an integer (not a bool) from `low` to `high`."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not (ok and low <= value and (high is None or value <= high)):  # type: ignore[operator]
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}", name, value, expected)
