"""Model construction by architecture name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.lenet import LeNet5
from tl_hub.models.vgg import MLP_RATIO, create_vgg16, study_head

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "vgg16": create_vgg16,  # timm's name: releases load with timm.create_model("hf-hub:...") too
}

# Architectures that are timm models of the same name: their releases also carry timm's pretrained_cfg.
TIMM_ARCHITECTURES = frozenset({"vgg16"})

# Faster equivalents of model.forward_head(features), for training a head on cached features.
HEAD_FORWARD: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "vgg16": study_head,
}

# Constructor arguments fixed by the architecture, saved in config.json so that timm rebuilds the same shapes.
ARCHITECTURE_ARGS: dict[str, dict[str, float]] = {
    "vgg16": {"mlp_ratio": MLP_RATIO},
}


def create_model(
    architecture: str, num_classes: int, in_chans: int, img_size: int, drop_rate: float, **kwargs: float
) -> nn.Module:
    """Build `architecture` with randomly initialized weights; `kwargs` are its ARCHITECTURE_ARGS."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {architecture!r}: choose one of {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[architecture](
        num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, img_size=img_size, **kwargs
    )


__all__ = [
    "ARCHITECTURES",
    "ARCHITECTURE_ARGS",
    "TIMM_ARCHITECTURES",
    "LeNet5",
    "create_model",
    "create_vgg16",
]
