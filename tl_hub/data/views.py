"""Test-time views (`PreprocessConfig.tta_scales`): a prediction averaged over the image and the image seen
with its field of view scaled about the centre, on the normalized batch the model eats.

Signs are never flipped (a mirrored "keep left" is "keep right"); zooming in and out keeps every class what it
is, and averages out how large the sign happens to be in the crop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tl_hub.config import PreprocessConfig


def field_of_view(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The batch `x` (B, C, H, W) seen with its field of view scaled about the centre: 0.9 enlarges the
    central 90%, 1.1 takes in 10% more around it (the border pixels repeated); bilinear, in the same memory
    order."""
    theta = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=torch.float32, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    view = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if x.is_contiguous(memory_format=torch.channels_last):
        view = view.contiguous(memory_format=torch.channels_last)
    return view.to(x.dtype)


def averaged_views(
    logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scales: Sequence[float]
) -> torch.Tensor:
    """`logits(x)` when `scales` is empty; else the log of the mean softmax over `x` and its `field_of_view`
    at each scale: log-probabilities, whose softmax and argmax are the averaged prediction's."""
    if not scales:
        return logits(x)
    probs = logits(x).float().softmax(dim=1)
    for scale in scales:
        probs += logits(field_of_view(x, scale)).float().softmax(dim=1)
    return probs.div_(len(scales) + 1).log_()


class TestTimeViews(nn.Module):
    """`model` predicting on the views of `PreprocessConfig.tta_scales` (`averaged_views`)."""

    __test__ = False  # a model, not a test class, whatever pytest makes of its name

    def __init__(self, model: nn.Module, scales: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return averaged_views(self.model, x, self.scales)


def with_views(model: nn.Module, preprocess: PreprocessConfig) -> nn.Module:
    """`model` itself, or wrapped to predict on the preprocessing's test-time views when it has any."""
    return TestTimeViews(model, preprocess.tta_scales) if preprocess.tta_scales else model
