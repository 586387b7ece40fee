"""VGG16 with the study's classifier head, built as a timm `vgg16` so that timm users can load it too.

The study replaced VGG16's classifier with Flatten (7x7x512) -> Dense 256 + ReLU -> Dropout 0.5 ->
Dense num_classes. timm's VGG always has the head ConvMlp (fc1: 7x7 conv, ReLU, dropout, fc2: 1x1 conv to
4096, ReLU) -> global pool -> dropout -> fc. The study's head fits into that shape exactly:

- fc1 with `mlp_ratio = 256 / 4096` is a 7x7 convolution from 512 to 256 channels on the 7x7 map: the same
  function as Flatten -> Dense 256;
- fc2 is frozen as an identity embedding (its first 256 output channels copy the 256 hidden units, the others
  are zero). The hidden units follow a ReLU, so they are >= 0 and the ReLU after fc2 leaves them unchanged;
- the final fc reads the first 256 of its 4096 inputs (the others are always zero) and is the study's
  Dense num_classes;
- tl_hub removes the head's second dropout, so training applies Dropout 0.5 once, as the study did.

`timm.create_model("hf-hub:USER/NAME", pretrained=True)` therefore computes exactly what tl_hub computes.
What a timm user gets differs in one respect only: timm rebuilds the head's second dropout, which matters
if they fine-tune further (it is inactive in eval mode).

The pooled head (`mlp_ratio=POOLED_RATIO`, `--pooled-head`): global average pooling -> Dropout -> Dense
num_classes, in the same shape: fc1 is a frozen 7x7 convolution from 512 to 512 channels that averages each
channel over the 7x7 map (weight 1/49 on its diagonal), so the 512 hidden units are the pooled features
(>= 0 after the last max-pool, unchanged by the ReLU) and the dropout acts on them; fc2 is the frozen identity
embedding again; the final fc reads the first 512 inputs and is the only layer of the head that trains. On a
map larger than 7x7 (an input over 224 pixels) timm averages the 7x7 windows' averages, so the pooling there
weighs the centre a little more than the edges; tl_hub trains exactly that.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from tl_hub.errors import ConfigError

STUDY_HIDDEN = 256  # units of the study's Dense layer
TIMM_HIDDEN = 4096  # VGG's fixed head width in timm
MLP_RATIO = STUDY_HIDDEN / TIMM_HIDDEN
POOLED_CHANNELS = 512  # VGG16's last conv block: what the pooled head averages
POOLED_RATIO = POOLED_CHANNELS / TIMM_HIDDEN
MIN_SIDE = 32  # five 2x2 max-poolings: a 32x32 image leaves a 1x1 map


def embed_identity(fc2: nn.Conv2d) -> None:
    """Make the 1x1 convolution `fc2` copy its inputs into its first outputs, and freeze it."""
    with torch.no_grad():
        fc2.weight.zero_()
        fc2.bias.zero_()
        n = fc2.in_channels
        fc2.weight[:n, :, 0, 0] = torch.eye(n)
    fc2.requires_grad_(False)


def embed_average(fc1: nn.Conv2d) -> None:
    """Make the k x k convolution `fc1` (C -> C channels) average each channel over its window; freeze it."""
    k = fc1.kernel_size[0]
    with torch.no_grad():
        fc1.weight.zero_()
        fc1.bias.zero_()
        channels = torch.arange(fc1.in_channels)
        fc1.weight[channels, channels] = 1.0 / (k * k)
    fc1.requires_grad_(False)


def is_pooled(model: nn.Module) -> bool:
    """Whether a VGG16 built here has the pooled head (fc1 keeps as many channels as it reads)."""
    fc1 = model.pre_logits.fc1
    return fc1.out_channels == fc1.in_channels == POOLED_CHANNELS


def create_vgg16(
    num_classes: int = 2,
    in_chans: int = 3,
    drop_rate: float = 0.5,
    img_size: int = 224,
    mlp_ratio: float = MLP_RATIO,
) -> nn.Module:
    """timm `vgg16` (random init) with the study's head, or with `mlp_ratio=POOLED_RATIO` the pooled head;
    see the module docstring.

    `img_size` is checked, not built in: timm's ConvMlp pools maps under 7x7 up to 7x7, so any image of
    `MIN_SIDE` pixels or more works; a smaller one is refused here rather than by the first forward pass.
    """
    if mlp_ratio not in (MLP_RATIO, POOLED_RATIO):
        raise ConfigError(
            f"mlp_ratio={mlp_ratio!r} is not a VGG16 head tl_hub builds: {MLP_RATIO} (the study's Flatten -> "
            f"Dense {STUDY_HIDDEN}) or {POOLED_RATIO} (the pooled head)",
            "model.mlp_ratio",
            mlp_ratio,
            f"{MLP_RATIO} or {POOLED_RATIO}",
        )
    pooled = mlp_ratio == POOLED_RATIO
    if img_size < MIN_SIDE:
        raise ConfigError(
            f"img_size={img_size} is too small for VGG16: its five 2x2 poolings need {MIN_SIDE} pixels or "
            f"more (use an input size of {MIN_SIDE} or more)",
            "preprocess.input_size",
            img_size,
            f"{MIN_SIDE} or more for VGG16",
        )
    model = timm.create_model(
        "vgg16",
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_chans,
        mlp_ratio=mlp_ratio,
        drop_rate=drop_rate,
    )
    if pooled:
        embed_average(model.pre_logits.fc1)
    embed_identity(model.pre_logits.fc2)
    hidden = POOLED_CHANNELS if pooled else STUDY_HIDDEN
    with torch.no_grad():
        model.head.fc.weight[:, hidden:] = 0  # inputs there are always zero; keep the weights inert too
    model.head.drop = nn.Identity()
    return model


def study_head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """`model.forward_head(features)` as the study wrote it (Flatten -> Dense ...), as matrix products; for
    the pooled head, as average pooling and one matrix product.

    A 7x7 convolution over a 7x7 map is a dense layer on the flattened map, with the same weights; as one GEMM
    it trains the head on cached features about 5x faster on the CPU than oneDNN's convolution does.
    """
    pre = model.pre_logits
    k = pre.input_kernel_size
    if features.shape[-2] < k or features.shape[-1] < k:  # what timm's ConvMlp does with smaller maps
        size = (max(k, features.shape[-2]), max(k, features.shape[-1]))
        features = torch.nn.functional.adaptive_avg_pool2d(features, size)
    if is_pooled(model):  # fc1 averages 7x7 windows; act1 keeps them (>= 0); the head pool averages windows
        h = pre.drop(torch.nn.functional.avg_pool2d(features, k, stride=1)).mean((2, 3))
        return torch.nn.functional.linear(h, model.head.fc.weight[:, :POOLED_CHANNELS], model.head.fc.bias)
    if features.shape[-2:] != (k, k):  # several 7x7 windows: timm's own convolution and pooling
        return model.forward_head(features)
    h = pre.drop(
        pre.act1(torch.nn.functional.linear(features.flatten(1), pre.fc1.weight.flatten(1), pre.fc1.bias))
    )
    h = pre.act2(torch.nn.functional.linear(h, pre.fc2.weight.flatten(1), pre.fc2.bias))  # (B, 4096)
    return model.head.fc(h)  # (B, num_classes); the head's pooling is the identity on a 1x1 map
