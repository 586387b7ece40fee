"""timm's model interface for tl_hub's own networks: `features` -> `pre_logits` -> `fc`."""

from __future__ import annotations

import torch
from torch import nn


class FeaturesHeadModel(nn.Module):
    """A network made of `features` (the convolutional base), `pre_logits` (the head up to the classifier,
    `num_features` wide) and `fc` (the classifier), with the methods timm's models have: what strategies,
    the feature cache and Grad-CAM call."""

    features: nn.Module
    pre_logits: nn.Module
    fc: nn.Linear
    num_features: int
    num_classes: int

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last layer with a freshly initialized one for `num_classes` outputs."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)  # (B, num_features)
        return x if pre_logits else self.fc(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
