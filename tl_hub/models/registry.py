"""The architecture registry: one record per family, the one place that says how to build it.

A record holds only what cannot be read from a built model: its constructor and the constructor arguments a
release must carry to rebuild the same shapes, whether timm knows it under the same name, and an optional
fast path for training its head on cached features. Everything else (which layer is the classifier, where
the last stage starts, the feature-map shape) is read from the model itself by `tl_hub.models.anatomy`,
in timm's vocabulary, so the same code serves every family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.lenet import LeNet5
from tl_hub.models.vgg import MLP_RATIO, create_vgg16, study_head

HeadForward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    """One architecture family."""

    name: str
    # (num_classes, in_chans, img_size, drop_rate, **args) -> the model with random weights
    build: Callable[..., nn.Module]
    # Constructor arguments fixed by the family, saved in config.json so that any loader rebuilds the shapes.
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # A timm architecture of this name: releases also carry timm's pretrained_cfg, and load with timm.
    timm: bool = False
    # A faster equivalent of model.forward_head(features), for training the head on cached features.
    head_forward: HeadForward | None = None
    # The module that forward_features runs (the convolutional base); the rest of the model is the head.
    base: str = "features"


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("lenet5", LeNet5),
        Architecture(
            "vgg16",
            create_vgg16,
            args=MappingProxyType({"mlp_ratio": MLP_RATIO}),  # the study's 256-unit head inside timm's vgg16
            timm=True,
            head_forward=study_head,  # Flatten -> Dense as one GEMM: 5x faster than the 7x7 conv on a CPU
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """The record of `name`; a ConfigError lists the valid names otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {name!r}: choose one of {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def create_model(
    architecture: str, num_classes: int, in_chans: int, img_size: int, drop_rate: float, **args: Any
) -> nn.Module:
    """Build `architecture` with random weights; `args` default to the family's fixed arguments."""
    arch = get_architecture(architecture)
    return arch.build(
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        drop_rate=drop_rate,
        **{**arch.args, **args},
    )
