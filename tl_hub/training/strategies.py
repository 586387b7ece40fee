"""The study's transfer strategies: which parameters train, at which learning rate, in which mode.

- scratch: every layer trains from random weights.
- feature-extract: the base is frozen (and in eval mode); only the head trains.
- finetune-top: the head trains alone for `warmup_epochs`, then the base's last stage joins it at
  `top_lr_scale` times the learning rate (Chollet's two-stage fine-tuning); the rest of the base stays frozen.
- finetune-all: every layer trains, starting from the pretrained weights; the pretrained layers at
  `base_lr_scale` times the head's learning rate.

Strategies are "which groups train", written once for every architecture: the groups (head, last stage,
the rest) are read from the model by `tl_hub.models.anatomy`. Parameters a model freezes by design (VGG16's
identity embedding) never train. Frozen modules run in eval mode, so BatchNorm keeps its running statistics.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from tl_hub.config import TransferConfig
from tl_hub.models.anatomy import parameter_groups

logger = logging.getLogger(__name__)


class TransferPlan:
    """Trainable sets, optimizer groups and module modes of one strategy, epoch by epoch."""

    def __init__(self, model: nn.Module, base: str | None, cfg: TransferConfig, lr: float):
        self.cfg = cfg
        self.base = base
        groups = parameter_groups(model, base)
        named = dict(model.named_parameters())
        self.head = [named[n] for n in groups.head]
        self.top = [named[n] for n in groups.top]
        self.rest = [named[n] for n in groups.rest]
        self.fixed = [named[n] for n in groups.fixed]
        self.top_start = groups.top_start
        self.head_names = set(groups.head)
        # The optimizer's parameter groups, and their names in the trackers' learning-rate curves.
        if cfg.strategy == "feature-extract":
            self.groups, self.group_names = [{"params": self.head, "lr": lr}], ["head"]
        elif cfg.strategy == "finetune-top":
            self.groups = [{"params": self.head, "lr": lr}, {"params": self.top, "lr": lr * cfg.top_lr_scale}]
            self.group_names = ["head", "top"]
        elif cfg.strategy == "finetune-all" and cfg.base_lr_scale != 1:
            base_lr = lr * cfg.base_lr_scale
            self.groups = [{"params": self.head, "lr": lr}, {"params": self.top + self.rest, "lr": base_lr}]
            self.group_names = ["head", "base"]
        else:
            self.groups, self.group_names = [{"params": self.head + self.top + self.rest, "lr": lr}], ["all"]

    def frozen_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Every weight and buffer but the head's: what the head's input depends on when only it trains."""
        return {name: t for name, t in model.state_dict().items() if name not in self.head_names}

    def trainable(self, epoch: int) -> list[nn.Parameter]:
        """The parameters that train in `epoch` (1-based)."""
        s = self.cfg.strategy
        if s == "feature-extract" or (s == "finetune-top" and epoch <= self.cfg.warmup_epochs):
            return self.head
        if s == "finetune-top":
            return self.head + self.top
        return self.head + self.top + self.rest

    def never_trained(self) -> list[nn.Parameter]:
        """The parameters no epoch trains: checkpoints need not hold them."""
        s = self.cfg.strategy
        if s == "feature-extract":
            return self.top + self.rest + self.fixed
        if s == "finetune-top":
            return self.rest + self.fixed
        return self.fixed

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
        if self.base is None:
            for module in model.modules():  # top-down: a frozen module's eval() reaches all inside it
                params = list(module.parameters())
                if params and not any(id(p) in trainable for p in params):
                    module.eval()
            return
        base = model.get_submodule(self.base)
        if not any(id(p) in trainable for p in self.top):
            base.eval()
        elif not any(id(p) in trainable for p in self.rest):
            for module in list(base)[: self.top_start]:
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
