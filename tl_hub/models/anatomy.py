"""What a built model is, read from the model in timm's vocabulary rather than kept in side tables.

- the classifier: the module `get_classifier()` returns (what `reset_classifier` replaces);
- the stages of the base: `feature_info`, the stage outputs timm records for every model (LeNet-5 too);
- the feature map the head reads: `forward_features` run on one blank image.
Strategies, the feature cache and `--init-from` use these, so they work the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def classifier_name(model: nn.Module) -> str:
    """The qualified name of the classifier module (e.g. "fc", "head.fc")."""
    classifier = model.get_classifier()
    names = [name for name, module in model.named_modules() if module is classifier]
    assert names, f"{type(model).__name__}.get_classifier() is not a submodule"
    return names[0]


def top_block_start(model: nn.Module, base: str) -> int:
    """Index in the sequential `base` of the first layer of its last stage that has parameters.

    timm's `feature_info` names the module that ends each stage (`features.22`, ...). The last stage begins
    with the first parameterized layer after the last stage end that has such layers after it (VGG16: conv5_1
    at index 24, after the pool at 23; LeNet-5: conv2 at 3).
    """
    prefix = base + "."
    ends = [int(f["module"][len(prefix) :]) for f in model.feature_info if f["module"].startswith(prefix)]
    layers = list(model.get_submodule(base))
    with_params = [i for i, layer in enumerate(layers) if any(True for _ in layer.parameters())]
    if not with_params:
        return 0
    last_end = max((end for end in ends if end < with_params[-1]), default=-1)
    return min(i for i in with_params if i > last_end)


@dataclass(frozen=True)
class ParameterGroups:
    """A model's parameter names by role: what strategies unfreeze, stage by stage."""

    head: list[str]  # everything outside the base that trains
    top: list[str]  # the base's last stage
    rest: list[str]  # the base below its last stage
    fixed: list[str]  # frozen by design (VGG16's identity embedding): never trains
    top_start: int  # index of the last stage's first layer in the base


def parameter_groups(model: nn.Module, base: str) -> ParameterGroups:
    """Split `model`'s parameters into head, top stage, the rest of the base, and fixed ones."""
    start = top_block_start(model, base)
    prefix = base + "."
    head, top, rest, fixed = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            fixed.append(name)
        elif not name.startswith(prefix):
            head.append(name)
        elif int(name[len(prefix) :].split(".")[0]) >= start:
            top.append(name)
        else:
            rest.append(name)
    return ParameterGroups(head, top, rest, fixed, start)


@torch.no_grad()
def feature_shape(model: nn.Module, in_chans: int, img_size: int) -> tuple[int, ...]:
    """The shape (C, H, W) of `forward_features` for one `img_size` image: what the feature cache stores."""
    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    x = torch.zeros(1, in_chans, img_size, img_size, device=parameter.device, dtype=parameter.dtype)
    shape = tuple(model.forward_features(x).shape[1:])
    model.train(was_training)
    return shape
