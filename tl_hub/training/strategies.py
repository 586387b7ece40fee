"""The study's transfer strategies, applied: which parameters train, at which learning rate, in which mode.

The strategies themselves are records in `tl_hub.strategies` (scratch, feature-extract, finetune-top,
finetune-all): which groups train from which epoch at which learning-rate scale. `TransferPlan` applies one
to a model, for every architecture: the groups (head, last stage, the rest) are read from the model by
`tl_hub.models.anatomy`. Parameters a model freezes by design (VGG16's identity embedding) never train.
Frozen modules run in eval mode, so BatchNorm keeps its running statistics.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from tl_hub.config import TransferConfig
from tl_hub.models.anatomy import parameter_groups, prefix_kind
from tl_hub.strategies import GROUPS, Stage, get_strategy

logger = logging.getLogger(__name__)


class TransferPlan:
    """Trainable sets, optimizer groups and module modes of one strategy, epoch by epoch."""

    def __init__(self, model: nn.Module, base: str | None, cfg: TransferConfig, lr: float):
        self.cfg = cfg
        self.strategy = get_strategy(cfg.strategy)
        self.base = base
        groups = parameter_groups(model, base)
        named = dict(model.named_parameters())
        self.params = {name: [named[n] for n in getattr(groups, name)] for name in GROUPS}
        self.head, self.top, self.rest = (self.params[name] for name in GROUPS)
        self.fixed = [named[n] for n in groups.fixed]
        self.top_start = groups.top_start
        # The optimizer's parameter groups, one per (start, learning rate): stages that start together at the
        # same rate share one; and their names in the trackers' learning-rate curves.
        merged: list[tuple[int, float, list[str]]] = []
        for stage in self.strategy.stages:
            start, stage_lr = stage.first_epoch(cfg), lr * stage.scale(cfg)
            if merged and merged[-1][:2] == (start, stage_lr):
                merged[-1][2].extend(stage.groups)
            else:
                merged.append((start, stage_lr, list(stage.groups)))
        self.groups = [
            {"params": [p for g in names for p in self.params[g]], "lr": r} for _, r, names in merged
        ]
        self.group_names = [_group_name(names) for _, _, names in merged]

    def first_epoch(self, stage: Stage) -> int:
        """The 1-based epoch from which `stage` trains."""
        return stage.first_epoch(self.cfg)

    @property
    def prefix_kind(self) -> str | None:
        """The feature cache's kind for the frozen prefix (`tl_hub.models.anatomy.prefix_kind`), when the
        strategy may cache it and the base is sequential; else None."""
        if self.strategy.cache != "prefix" or self.base is None or not self.top_start:
            return None
        return prefix_kind(self.base, self.top_start)

    def frozen_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Every weight and buffer no epoch trains: what a cached input depends on (the head's input when only
        the head trains; the frozen prefix's output when the rest never trains)."""
        trained = {id(p) for name in self.strategy.trained_groups for p in self.params[name]}
        named = dict(model.named_parameters())
        return {
            name: t
            for name, t in model.state_dict().items()
            if not (name in named and id(named[name]) in trained)
        }

    def trainable(self, epoch: int) -> list[nn.Parameter]:
        """The parameters that train in `epoch` (1-based)."""
        training = {
            g for stage in self.strategy.stages if self.first_epoch(stage) <= epoch for g in stage.groups
        }
        return [p for name in GROUPS if name in training for p in self.params[name]]

    def never_trained(self) -> list[nn.Parameter]:
        """The parameters no epoch trains: checkpoints need not hold them."""
        trained = self.strategy.trained_groups
        return [p for name in GROUPS if name not in trained for p in self.params[name]] + self.fixed

    def unfreezes(self, epoch: int) -> bool:
        """Whether more parameters train in `epoch` than in the one before (a stage joins after epoch 1)."""
        return epoch > 1 and any(self.first_epoch(stage) == epoch for stage in self.strategy.stages)

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


def _group_name(groups: list[str]) -> str:
    if set(groups) == set(GROUPS):
        return "all"
    if set(groups) == {"top", "rest"}:
        return "base"
    return "+".join(groups)
