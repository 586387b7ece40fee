"""Grad-CAM (Selvaraju et al., 2017): where in the image the network found evidence for a class.

The class score's gradient with respect to the last convolution's map, averaged per channel, weighs the
channels; their positive sum is a coarse heatmap, upsampled to the input. The map is the one Selvaraju et al.
used, the last convolutional layer's (after its activation): for a family whose `forward_features` runs a
sequential base (the registry's `base`), the poolings that end the base are left out of it and run on the
head's side, so VGG16's map is `features.29`, the ReLU after its last convolution `features.28` (14x14 at
224x224, not the 7x7 after the last pooling), and LeNet-5's is 10x10 at 32x32. Any other model's map is
what `forward_features` gives. The gradient stops at that map, so only what follows it runs backwards: cheap
even for VGG16.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tl_hub.config import PreprocessConfig
from tl_hub.data.preprocess import model_view
from tl_hub.errors import TLHubError

POOLINGS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
Forward = Callable[[torch.Tensor], torch.Tensor]


def cam_layer(model: nn.Module, base: str | None = None) -> tuple[str | None, Forward, Forward]:
    """Where Grad-CAM reads the map: (the module whose output it is, or None for `forward_features`'s own,
    the forward up to it, the forward from it to the logits). `base` is the sequential module that
    `forward_features` runs (the registry's `Architecture.base`), None when it runs something else."""
    layers = model.get_submodule(base) if base is not None else None
    if not isinstance(layers, nn.Sequential):
        return None, model.forward_features, model.forward_head
    end = len(layers)
    while end > 1 and isinstance(layers[end - 1], POOLINGS):
        end -= 1
    before, after = layers[:end], layers[end:]
    return f"{base}.{end - 1}", before, lambda features: model.forward_head(after(features))


def grad_cam(
    model: nn.Module, x: torch.Tensor, class_index: int | None = None, base: str | None = None
) -> tuple[torch.Tensor, int]:
    """Heatmap (H, W) in [0, 1] at the input's size for one image `x` (1, C, H, W), and the class explained.

    `model` needs timm's `forward_features` / `forward_head` (a CNN's map, or a vision transformer's patch
    tokens); `base` is its sequential base, if it has one (`cam_layer`); `class_index` defaults to the top-1
    class.
    """
    _, to_map, from_map = cam_layer(model, base)
    with torch.enable_grad():
        features = to_map(x).detach().requires_grad_(True)  # (1, C, h, w) or (1, N, C)
        logits = from_map(features)  # (1, num_classes)
        index = int(logits.argmax(1)) if class_index is None else class_index
        (grads,) = torch.autograd.grad(logits[0, index], features)
    if features.ndim == 3 and not grads[:, getattr(model, "num_prefix_tokens", 0) :].any():
        raise TLHubError(
            f"Grad-CAM: {type(model).__name__}'s head reads its class token only, so no image position gets "
            "a gradient"
        )
    features, grads = _as_map(model, features.detach()), _as_map(model, grads)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1): each channel's importance
    cam = F.relu((weights * features).sum(dim=1, keepdim=True))  # (1, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).cpu(), index


def overlay(
    image: Image.Image, cam: torch.Tensor, preprocess: PreprocessConfig, size: int = 256, alpha: float = 0.5
) -> Image.Image:
    """`cam` in the jet colour map over the region of `image` the model saw, `size` pixels square."""
    from matplotlib import colormaps  # imported here: only explanations need matplotlib loaded

    view = np.asarray(model_view(image, preprocess, size), dtype=np.float32) / 255.0  # (size, size, 3)
    heat = F.interpolate(cam[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    colours = colormaps["jet"](heat[0, 0].clamp(0, 1).numpy())[..., :3]  # (size, size, 3)
    blend = (1 - alpha) * view + alpha * colours
    return Image.fromarray(np.clip(blend * 255 + 0.5, 0, 255).astype(np.uint8))


def _as_map(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """A feature map (1, C, h, w): a CNN's as it is; a vision transformer's patch tokens (1, N, C), after its
    class and register tokens, laid back on their square grid."""
    if features.ndim == 4:
        return features
    tokens = features[:, getattr(model, "num_prefix_tokens", 0) :]
    side = math.isqrt(tokens.shape[1])
    if features.ndim != 3 or side * side != tokens.shape[1]:
        raise TLHubError(
            f"Grad-CAM needs a spatial feature map; {type(model).__name__} gives {tuple(features.shape)}"
        )
    return tokens.transpose(1, 2).reshape(1, tokens.shape[2], side, side)
