"""Model construction by architecture name."""

from __future__ import annotations

from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.lenet import LeNet5

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "lenet5": LeNet5,
}


def create_model(
    architecture: str, num_classes: int, in_chans: int, img_size: int, drop_rate: float
) -> nn.Module:
    """Build `architecture` with randomly initialized weights."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {architecture!r}: choose one of {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[architecture](
        num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, img_size=img_size
    )


__all__ = ["ARCHITECTURES", "LeNet5", "create_model"]
