"""What a built model is, read from the model in timm's vocabulary rather than kept in side tables.

- the classifier: the module `get_classifier()` returns (what `reset_classifier` replaces);
- the stages: timm's `group_matcher()` (the groups timm itself uses for layer-wise learning rates), or, for
  a hand-written family with a sequential base, its `feature_info` (the module that ends each stage);
- what the head reads: `forward_features`, or `forward_head(pre_logits=True)`, run on one blank image.
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


@dataclass(frozen=True)
class ParameterGroups:
    """A model's parameter names by role: what strategies unfreeze, stage by stage."""

    head: list[str]  # what every strategy trains: the new head
    top: list[str]  # the last stage (finetune-top's second group)
    rest: list[str]  # everything below the last stage
    fixed: list[str]  # frozen by design (VGG16's identity embedding): never trains
    top_start: int | None  # index of the last stage's first layer in a sequential base, if there is one


def parameter_groups(model: nn.Module, base: str | None) -> ParameterGroups:
    """Split `model`'s parameters into head, last stage, the rest, and fixed ones.

    With a sequential `base` (LeNet-5, the study's VGG16), the head is everything outside it. Otherwise (any
    timm model) the head is the classifier alone, and the stages are timm's coarse parameter groups.
    """
    if base is not None:
        return _groups_of_sequential_base(model, base)
    return _groups_of_timm_model(model)


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


def _groups_of_sequential_base(model: nn.Module, base: str) -> ParameterGroups:
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


def _groups_of_timm_model(model: nn.Module) -> ParameterGroups:
    """The classifier is the head; the last stage is the last of timm's coarse groups that holds a weight
    matrix or kernel (a block, not only norms), with every group after it (the final norms)."""
    from timm.models import group_parameters

    fixed = [name for name, p in model.named_parameters() if not p.requires_grad]
    prefix = classifier_name(model) + "."
    head = [name for name, p in model.named_parameters() if name.startswith(prefix) and p.requires_grad]
    shapes = {name: p.ndim for name, p in model.named_parameters()}
    groups = [
        [n for n in names if not n.startswith(prefix) and n not in fixed]
        for names in group_parameters(model, model.group_matcher(coarse=True)).values()
    ]
    groups = [names for names in groups if names]
    last = max(
        (i for i, names in enumerate(groups) if any(shapes[n] >= 2 for n in names)), default=len(groups)
    )
    top = [n for names in groups[last:] for n in names]
    rest = [n for names in groups[:last] for n in names]
    return ParameterGroups(head, top, rest, fixed, None)


PREFIX = "prefix:"


def prefix_kind(base: str, top_start: int) -> str:
    """The `head_input` kind of a sequential base's frozen prefix: its layers before `top_start` (the last
    stage's first layer), e.g. "prefix:features:24" for VGG16's conv blocks 1-4 and their pooling."""
    return f"{PREFIX}{base}:{top_start}"


def split_prefix(model: nn.Module, kind: str) -> tuple[nn.Module, nn.Module]:
    """(the prefix, the rest of the base) of a `prefix_kind`: two views of the same layers."""
    base, top_start = kind[len(PREFIX) :].rsplit(":", 1)
    layers = model.get_submodule(base)
    return layers[: int(top_start)], layers[int(top_start) :]


@torch.no_grad()
def head_input(model: nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """What a cached input holds for input `x`: what the head reads, "features" (forward_features) or
    "pre_logits" (pooled, before the classifier); or a sequential base's frozen prefix's output
    (`prefix_kind`), on which its last stage and the head train."""
    if kind.startswith(PREFIX):
        return split_prefix(model, kind)[0](x)
    features = model.forward_features(x)
    return features if kind == "features" else model.forward_head(features, pre_logits=True)


def feature_shape(model: nn.Module, in_chans: int, img_size: int, kind: str = "features") -> tuple[int, ...]:
    """The shape of `head_input` for one `img_size` image: what the feature cache stores per image."""
    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    x = torch.zeros(1, in_chans, img_size, img_size, device=parameter.device, dtype=parameter.dtype)
    shape = tuple(head_input(model, x, kind).shape[1:])
    model.train(was_training)
    return shape
