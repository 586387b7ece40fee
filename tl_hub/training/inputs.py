"""The trainer's inputs step: from what set-up made (`Job`), the loaders the loop feeds, the module it trains,
the optimizer and the learning-rate schedule, all prepared by Accelerate (`Inputs`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.data_loader import prepare_data_loader
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tl_hub.config import RunConfig, TrainConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.data.loading import PreparedData
from tl_hub.data.streaming import StreamSplit
from tl_hub.models import Architecture
from tl_hub.models.anatomy import split_prefix
from tl_hub.release.facts import StartWeights
from tl_hub.scoring import Prepare, channels_last, eval_loader, feature_inputs, image_inputs
from tl_hub.training.averaging import WeightAverage
from tl_hub.training.checkpoints import keep_out_of_checkpoints
from tl_hub.training.features import cached_features
from tl_hub.training.strategies import TransferPlan

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """What set-up gives the later steps."""

    run: RunConfig
    output_dir: Path
    accelerator: Accelerator
    arch: Architecture
    data: PreparedData
    model: nn.Module  # the whole network: what the release holds
    plan: TransferPlan
    resume_from: Path | None  # the checkpoint to continue from
    frozen_digest: str  # of the parameters no epoch trains (left out of checkpoints)
    start: StartWeights  # where the weights started, by a public name (the release's facts)


@dataclass
class Inputs:
    """What the loop feeds and trains: the images, or the frozen base's cached features."""

    trainee: nn.Module  # the model, or its head alone on cached features; prepared by Accelerate
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]  # validation, and test when the dataset has one
    train_prepare: Prepare
    eval_prepare: Prepare
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    synced: set[int]  # ids of the parameters DDP averages (those trainable when it wrapped the model)
    hook: object  # the save-state hook that keeps the frozen parameters out of checkpoints
    on_epoch: Callable[[int], None] | None = None  # told each epoch's number (the prefix cache's view)
    average: WeightAverage | None = None  # the weights' moving average (train.ema_decay), scored instead

    @property
    def scored(self) -> nn.Module:
        """What validation and test score: the moving average when there is one, else the trainee."""
        return self.trainee if self.average is None else self.average.module


class HeadOnly(nn.Module):
    """`model`'s head as a module of its own, fed cached base features: what feature-extract trains."""

    def __init__(self, model: nn.Module, arch: Architecture):
        super().__init__()
        self.model = model
        self.head_forward = arch.head_forward
        self.head_input = arch.head_input

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.head_forward is not None:
            return self.head_forward(self.model, features)
        if self.head_input == "pre_logits":  # pooled features: the classifier is the whole head
            return self.model.get_classifier()(features)
        return self.model.forward_head(features)


class TopOnly(HeadOnly):
    """A sequential base's last stage and the head, fed the frozen prefix's cached output: what finetune-top
    trains on the prefix cache. The layers are `model`'s own, sliced at each call, so the state dict (and a
    checkpoint) names each tensor once, as HeadOnly's does."""

    def __init__(self, model: nn.Module, arch: Architecture, kind: str):
        super().__init__(model, arch)
        self.kind = kind

    def forward(self, prefix_output: torch.Tensor) -> torch.Tensor:
        _, top = split_prefix(self.model, self.kind)
        return super().forward(top(prefix_output.contiguous(memory_format=torch.channels_last)))


class ViewPerEpoch(Dataset):
    """K cached views of N images served one view per epoch: epoch e reads view (e - 1) mod K of every
    image, so an epoch is one pass over the images, as when training on live augmented images."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, views: int):
        self.features, self.labels, self.views = features, labels, views
        self.images = len(features) // views
        self.view = 0

    def set_epoch(self, epoch: int) -> None:
        self.view = (epoch - 1) % self.views

    def __len__(self) -> int:
        return self.images

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.view * self.images + i
        return self.features[j], self.labels[j]


def build_inputs(job: Job) -> Inputs:
    """Loaders for the strategy (images, or cached features when the base is frozen), the optimizer and the
    schedule, all prepared by Accelerate."""
    run, accelerator, data = job.run, job.accelerator, job.data
    splits = data.splits()
    on_epoch = None
    if run.transfer.caches_features:
        tensors = _cached_features(job, splits)
        trainee: nn.Module = HeadOnly(job.model, job.arch)
        train_prepare = eval_prepare = feature_inputs
        features = TensorDataset(*tensors["train"])
        train_loader = DataLoader(features, batch_size=run.train.batch_size, shuffle=True)
    elif run.caches_prefix(job.plan.prefix_kind is not None):
        kind = job.plan.prefix_kind
        tensors = _cached_features(job, splits, kind)
        # oneDNN's fast layout, as the extraction left it: the same whether the cache was hit or filled
        trainee = TopOnly(job.model.to(memory_format=torch.channels_last), job.arch, kind)
        train_prepare = eval_prepare = feature_inputs
        views = ViewPerEpoch(*tensors["train"], max(1, run.transfer.cache_views))
        train_loader = DataLoader(views, batch_size=run.train.batch_size, shuffle=True)
        on_epoch = views.set_epoch
    else:
        tensors = {name: (split.images, split.labels) for name, split in splits.items() if name != "train"}
        trainee = job.model
        train_prepare = image_inputs(run.preprocess, BatchAugment(run.aug))
        eval_prepare = image_inputs(run.preprocess)
        if run.train.channels_last:
            trainee = trainee.to(memory_format=torch.channels_last)
            train_prepare, eval_prepare = channels_last(train_prepare), channels_last(eval_prepare)
        train_loader = _train_loader(job)
        _say_why_live(job)
    optimizer = build_optimizer(job.plan.groups, run.train)
    scheduler = build_scheduler(optimizer, run.train, len(train_loader))
    source = trainee  # neither compiled nor wrapped: the module whose weights are averaged
    if run.transfer.compile:
        trainee = torch.compile(trainee)
    if isinstance(job.data.train, StreamSplit):
        trainee, optimizer, scheduler = accelerator.prepare(trainee, optimizer, scheduler)
        # already this process's own shard: Accelerate only moves its batches to the device
        train_loader = prepare_data_loader(
            train_loader, accelerator.device, 1, 0, put_on_device=True, dispatch_batches=False
        )
    else:
        trainee, optimizer, train_loader, scheduler = accelerator.prepare(
            trainee, optimizer, train_loader, scheduler
        )
    eval_loaders = {k: eval_loader(*v, accelerator) for k, v in tensors.items() if k != "train"}
    # DDP all-reduces the gradients of the parameters that required grad when prepare() wrapped the model.
    synced = {id(p) for p in job.model.parameters() if p.requires_grad}
    hook = keep_out_of_checkpoints(accelerator, job.plan.never_trained())
    average = None
    if run.train.ema_decay:
        # made after prepare(), which moved the module to the device; one per process, from the same weights
        average = WeightAverage(source, run.train.ema_decay, len(train_loader))
    return Inputs(
        trainee,
        train_loader,
        eval_loaders,
        train_prepare,
        eval_prepare,
        optimizer,
        scheduler,
        synced,
        hook,
        on_epoch,
        average,
    )


def _say_why_live(job: Job) -> None:
    """Log why a strategy that could train on cached views of its frozen layers trains on live images."""
    run = job.run
    if run.transfer.spec.caches_features:
        return
    if job.plan.prefix_kind is None and run.transfer.cache_views:
        logger.warning(
            "--cache-views %d ignored: %s on %s trains on live images (views are cached for feature-extract, "
            "and for finetune-top on a sequential base: VGG16, LeNet-5)",
            run.transfer.cache_views,
            run.transfer.strategy,
            run.model.architecture,
        )
    elif job.plan.prefix_kind is not None and run.transfer.feature_cache and not run.data.streaming:
        logger.info(
            "%s trains on live images: --cache-views K caches K augmented views of the frozen layers below "
            "the last stage, and each epoch then runs only that stage and the head",
            run.transfer.strategy,
        )


def _train_loader(job: Job) -> DataLoader:
    """The training images: in memory, read from the disk image cache by batch (Accelerate shards both over
    the processes), or streamed, each process reading its own shard of the stream."""
    train, batch_size, accelerator = job.data.train, job.run.train.batch_size, job.accelerator
    if isinstance(train, StreamSplit):
        n = accelerator.num_processes
        return train.loader(batch_size // n, accelerator.process_index, n)
    return train.loader(batch_size)


def _cached_features(
    job: Job, splits: dict, kind: str | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The frozen base (or its frozen prefix: `kind`) run once per image and view, cached on disk: what the
    trained layers train and are scored on."""
    run, accelerator = job.run, job.accelerator
    tensors = {}
    with accelerator.main_process_first():
        for name, split in splits.items():
            tensors[name] = cached_features(
                job.model,
                split.images,
                split.labels,
                run.preprocess,
                accelerator.device,
                frozen=job.plan.frozen_state(job.model),
                kind=kind or job.arch.head_input,
                views=run.transfer.cache_views if name == "train" else 0,
                aug=run.aug,
                seed=run.train.seed,
                fast=run.transfer.fast_base,
                desc=name,
            )
    if kind is None and run.aug.enabled and not run.transfer.cache_views:
        logger.info("feature cache: one clean view per image, no augmentation (--cache-views K adds K views)")
    return tensors


def build_optimizer(params: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate factor per step: a linear warm-up (per batch, not per epoch, so the first epoch
    does not crawl), then constant or a cosine decay to 0 over the remaining steps."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.lr_warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
