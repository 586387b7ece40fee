"""The study's transfer strategies: which parameters train, at which learning rate, in which mode.

- scratch: every layer trains from random weights.
- feature-extract: the convolutional base is frozen (and in eval mode); only the head trains.
- finetune-top: the head trains alone for `warmup_epochs`, then the last conv block joins it at
  `top_lr_scale` times the learning rate (Chollet's two-stage fine-tuning); the rest of the base stays frozen.
- finetune-all: every layer trains, starting from the pretrained weights.

"Base" is the model's `features` module (timm's and LeNet-5's name); "head" is everything else. Parameters a
model freezes by design (VGG16's identity embedding) never train.
"""

from __future__ import annotations

import logging

from torch import nn

from tl_hub.config import TransferConfig

logger = logging.getLogger(__name__)

# Index in `model.features` where the last convolutional block starts.
TOP_BLOCK_START = {
    "lenet5": 3,  # conv2, ReLU, pool
    "vgg16": 24,  # conv5_1..conv5_3 with their ReLUs, and the last pool
}


class TransferPlan:
    """Trainable sets, optimizer groups and module modes of one strategy, epoch by epoch."""

    def __init__(self, model: nn.Module, architecture: str, cfg: TransferConfig, lr: float):
        self.cfg = cfg
        start = TOP_BLOCK_START[architecture]
        named = dict(model.named_parameters())
        fixed = {n for n, p in named.items() if not p.requires_grad}

        def block(name: str) -> int | None:
            return int(name.split(".")[1]) if name.startswith("features.") else None

        self.head = [p for n, p in named.items() if block(n) is None and n not in fixed]
        self.top = [p for n, p in named.items() if block(n) is not None and block(n) >= start]
        self.rest = [p for n, p in named.items() if block(n) is not None and block(n) < start]
        self.fixed = [named[n] for n in fixed]
        self.top_start = start
        if cfg.strategy == "feature-extract":
            self.groups = [{"params": self.head, "lr": lr}]
        elif cfg.strategy == "finetune-top":
            self.groups = [{"params": self.head, "lr": lr}, {"params": self.top, "lr": lr * cfg.top_lr_scale}]
        else:
            self.groups = [{"params": self.head + self.top + self.rest, "lr": lr}]

    def trainable(self, epoch: int) -> list[nn.Parameter]:
        """The parameters that train in `epoch` (1-based)."""
        s = self.cfg.strategy
        if s == "feature-extract" or (s == "finetune-top" and epoch <= self.cfg.warmup_epochs):
            return self.head
        if s == "finetune-top":
            return self.head + self.top
        return self.head + self.top + self.rest

    def unfreezes(self, epoch: int) -> bool:
        """Whether more parameters train in `epoch` than in the one before (finetune-top after warm-up)."""
        return self.cfg.strategy == "finetune-top" and epoch == self.cfg.warmup_epochs + 1 and epoch > 1

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        """Set requires_grad and train/eval modes for `epoch`: frozen base modules stay in eval mode, so
        BatchNorm keeps its running statistics and Dropout is off where nothing learns."""
        trainable = {id(p) for p in self.trainable(epoch)}
        for p in self.head + self.top + self.rest:
            p.requires_grad_(id(p) in trainable)
        model.train()
        features = model.features
        if not any(id(p) in trainable for p in self.top):
            features.eval()
        elif not any(id(p) in trainable for p in self.rest):
            for module in list(features)[: self.top_start]:
                module.eval()

    def log_counts(self, epoch: int) -> None:
        trainable = sum(p.numel() for p in self.trainable(epoch))
        total = sum(p.numel() for p in self.head + self.top + self.rest + self.fixed)
        logger.info(
            "strategy %s, epoch %d: %s trainable / %s frozen parameters",
            self.cfg.strategy,
            epoch,
            f"{trainable:,}",
            f"{total - trainable:,}",
        )
