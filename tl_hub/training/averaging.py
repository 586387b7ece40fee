"""The weights' exponential moving average (`train.ema_decay`): timm's ModelEmaV3 of the trained module,
stepped after every optimizer step, scored every epoch in the model's place, saved with each checkpoint
(safetensors) and, when training ends, copied into the model that the release holds.

The decay is warmed up per step, `min(decay, (1 + t) / (10 + t))`, so the average follows the weights while
they move fast, and a short run is not held back by its random start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from torch import nn

logger = logging.getLogger(__name__)

EMA_NAME = "ema.safetensors"


class WeightAverage:
    """An exponential moving average of `source`'s weights and buffers."""

    def __init__(self, source: nn.Module, decay: float, steps_per_epoch: int) -> None:
        self.source = source
        self.decay = decay
        self.steps_per_epoch = steps_per_epoch
        self.step = 0
        self.average = ModelEmaV3(source, decay=decay)
        self.average.module.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged copy of the source module: what is scored."""
        return self.average.module

    def start_epoch(self, epoch: int) -> None:
        """Set the step count for `epoch` (1-based), as an uninterrupted run has it."""
        self.step = (epoch - 1) * self.steps_per_epoch

    @torch.no_grad()
    def update(self) -> None:
        """Fold the source's weights into the average after an optimizer step."""
        self.step += 1
        decay = 0.0 if self.step == 1 else min(self.decay, (1 + self.step) / (10 + self.step))
        self.average.apply_update_(self.source, decay)

    def save(self, directory: Path) -> None:
        state = {name: t.detach().contiguous().cpu() for name, t in self.module.state_dict().items()}
        save_file(state, str(directory / EMA_NAME))

    def load(self, directory: Path) -> None:
        path = directory / EMA_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the checkpoint was written without the average")
        device = next(self.module.parameters()).device
        self.module.load_state_dict(load_file(str(path), device=str(device)))

    def copy_to_source(self) -> None:
        """Make the source module the average (its parameters and buffers keep their own tensors)."""
        self.source.load_state_dict(self.module.state_dict())
        logger.info("the weights' moving average (decay %g) replaces the last step's weights", self.decay)
