"""The architecture registry: one record per family, the one place that says how to build it.

A record holds only what cannot be read from a built model: its constructor and the constructor arguments a
release must carry to rebuild the same shapes, whether timm knows it under the same name, what the head
reads, and an optional fast path for training the head on cached features. Everything else (which layer is
the classifier, where the last stage starts, the feature shape) is read from the model itself by
`tl_hub.models.anatomy`, in timm's vocabulary, so the same code serves every family.

Three families are written by hand (LeNet-5, SignCNN, and VGG16 with the study's head); any other timm
architecture gets its record derived from timm's own metadata by `get_architecture`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.lenet import LeNet5
from tl_hub.models.signcnn import SignCNN
from tl_hub.models.vgg import MLP_RATIO, POOLED_RATIO, create_vgg16, study_head

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
    # What the head reads, and what the feature cache stores when the rest is frozen: "features" (the map
    # forward_features gives; the head is forward_head) or "pre_logits" (forward_head(pre_logits=True); the
    # head is the classifier alone).
    head_input: str = "features"
    # A faster equivalent of model.forward_head(features), for training the head on cached features.
    head_forward: HeadForward | None = None
    # The sequential module that forward_features runs, whose stages `feature_info` names; None for timm's
    # other architectures, whose stages come from timm's `group_matcher`.
    base: str | None = "features"
    # The model is built for one input size (a ViT's position embeddings): releases record it.
    fixed_input_size: bool = False
    # The constructor arguments that give the family a pooled head (--pooled-head) in place of its own;
    # None where it has no such variant.
    pooled_args: Mapping[str, Any] | None = None

    def family_args(self, pooled_head: bool = False) -> dict[str, Any]:
        """The family's fixed constructor arguments; with `pooled_head`, those of its pooled head."""
        if pooled_head and self.pooled_args is None:
            raise ConfigError(
                f"--pooled-head: {self.name} has no pooled variant of its head (vgg16 has: global average "
                "pooling -> Dense); drop --pooled-head",
                "model.pooled_head",
                pooled_head,
                "false for this architecture",
            )
        return {**self.args, **(self.pooled_args if pooled_head and self.pooled_args else {})}

    def model_args(self, drop_rate: float, img_size: int, pooled_head: bool = False) -> dict[str, Any]:
        """The constructor arguments a release records to rebuild this model."""
        return {
            "drop_rate": drop_rate,
            **self.family_args(pooled_head),
            **({"img_size": img_size} if self.fixed_input_size else {}),
        }


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("lenet5", LeNet5),
        Architecture(
            "signcnn",
            SignCNN,
            args=MappingProxyType({"widths": (32, 64, 128), "convs_per_stage": 2, "hidden": 256}),
        ),
        Architecture(
            "signcnn_small",  # half the channels, a quarter of the convolutions' work: cnn-gtsrb-fast's
            SignCNN,
            args=MappingProxyType({"widths": (16, 32, 64), "convs_per_stage": 2, "hidden": 256}),
        ),
        Architecture(
            "vgg16",
            create_vgg16,
            args=MappingProxyType({"mlp_ratio": MLP_RATIO}),  # the study's 256-unit head inside timm's vgg16
            timm=True,
            head_forward=study_head,  # Flatten -> Dense as one GEMM: 5x faster than the 7x7 conv on a CPU
            pooled_args=MappingProxyType({"mlp_ratio": POOLED_RATIO}),  # average pooling -> Dense, same shape
        ),
    )
}


def create_timm_model(
    name: str,
    num_classes: int,
    in_chans: int,
    img_size: int,
    drop_rate: float,
    pretrained: str | None = None,
    fixed_input_size: bool = False,
    **args: Any,
) -> nn.Module:
    """timm's `name` with a new `num_classes` classifier; with `pretrained` (a timm name or tag, `hf-hub:...`,
    `local-dir:...`), timm loads those weights into everything but the classifier."""
    import timm

    kwargs = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate, **args}
    if fixed_input_size:
        kwargs["img_size"] = img_size
    return timm.create_model(pretrained or name, pretrained=pretrained is not None, **kwargs)


def timm_architecture(name: str) -> Architecture:
    """The record of timm's architecture `name`, derived from timm's metadata."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    fixed = bool(cfg is not None and cfg.fixed_input_size)
    return Architecture(
        name,
        partial(create_timm_model, name, fixed_input_size=fixed),
        timm=True,
        head_input="pre_logits",
        base=None,
        fixed_input_size=fixed,
    )


def get_architecture(name: str) -> Architecture:
    """The record of `name`: a hand-written family, or any architecture timm knows; a ConfigError with the
    closest names otherwise."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    import timm

    if isinstance(name, str) and timm.is_model(name):
        return timm_architecture(name)
    close = difflib.get_close_matches(str(name), [*ARCHITECTURES, *timm.list_models()], n=3)
    raise ConfigError(
        f"unknown architecture {name!r}: choose one of {', '.join(sorted(ARCHITECTURES))} or any timm "
        f"architecture (timm.list_models()){'; close: ' + ', '.join(close) if close else ''}"
    )


def create_model(
    architecture: str,
    num_classes: int,
    in_chans: int,
    img_size: int,
    drop_rate: float,
    pooled_head: bool = False,
    **args: Any,
) -> nn.Module:
    """Build `architecture` with random weights; `args` default to the family's fixed arguments (with
    `pooled_head`, those of its pooled head)."""
    arch = get_architecture(architecture)
    return arch.build(
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        drop_rate=drop_rate,
        **{**arch.family_args(pooled_head), **args},
    )
