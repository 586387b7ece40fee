"""A whole training run on Accelerate: data, model, epochs, checkpoints, evaluation, release.

The run directory OUTPUT_DIR holds `run_config.json`, `checkpoints/epoch_NNN/` (Accelerate state, for
--resume) and the release `model/`. Nothing in `model/` is resume state; nothing in `checkpoints/` is
published.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tl_hub.config import RunConfig, TrainConfig
from tl_hub.data.loading import PreparedData, prepare_data
from tl_hub.data.transforms import BatchAugment
from tl_hub.errors import ConfigError
from tl_hub.metrics import classification_metrics
from tl_hub.models import HEAD_FORWARD, create_model
from tl_hub.release.publish import PushTarget, check_can_push, push_to_hub
from tl_hub.release.writer import write_release
from tl_hub.training.engine import (
    check_processes,
    evaluate_loss,
    feature_inputs,
    image_inputs,
    predict,
    train_one_epoch,
)
from tl_hub.training.features import cached_features
from tl_hub.training.strategies import TransferPlan
from tl_hub.training.weights import init_from_release, load_pretrained_base

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
STATE_NAME = "trainer_state.json"  # written last: a checkpoint without it is incomplete
CHECKPOINTS_KEPT = 2
EVAL_BATCH_SIZE = 512


def build_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = output_dir / "checkpoints"
    return sorted(p.parent for p in root.glob(f"epoch_*/{STATE_NAME}")) if root.is_dir() else []


def _check_run_dir(output_dir: Path, run: RunConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from, after checking the directory matches the request."""
    checkpoints = _checkpoints(output_dir)
    saved = output_dir / RUN_CONFIG_NAME
    if not resume:
        if checkpoints or (output_dir / "model").exists():
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} already holds a run: pass --resume to continue it, "
                "or choose another --output-dir"
            )
        return None
    if saved.exists():
        before = RunConfig.from_dict(json.loads(saved.read_text()))
        if before != run:
            old, new = before.to_dict(), run.to_dict()
            diffs = [
                f"{section}.{key}: {old[section][key]!r} -> {new[section][key]!r}"
                for section in new
                if isinstance(new[section], dict)
                for key in new[section]
                if old[section][key] != new[section][key]
            ]
            raise ConfigError(
                f"--resume: settings differ from the run in {str(output_dir)!r} ({'; '.join(diffs)}): "
                "rerun the original command with --resume"
            )
    if not checkpoints:
        logger.warning("--resume: no checkpoint in %s yet; starting from the first epoch", output_dir)
        return None
    return checkpoints[-1]


def _loader(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(TensorDataset(inputs, labels), batch_size=batch_size, shuffle=shuffle)


class HeadOnly(nn.Module):
    """`model`'s head as a module of its own, fed cached base features: what feature-extract trains."""

    def __init__(self, model: nn.Module, architecture: str):
        super().__init__()
        self.model = model
        self.head_forward = HEAD_FORWARD.get(architecture)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.head_forward is not None:
            return self.head_forward(self.model, features)
        return self.model.forward_head(features)


def build_model(run: RunConfig, label_names: list[str]) -> nn.Module:
    """The network with its starting weights: random, a pretrained base, or a whole earlier release."""
    model = create_model(
        run.model.architecture,
        num_classes=len(label_names),
        in_chans=run.preprocess.channels,
        img_size=run.preprocess.input_size,
        drop_rate=run.model.drop_rate,
    )
    if run.transfer.strategy == "scratch":
        logger.info("strategy scratch: random initial weights")
    elif run.transfer.init_from is not None:
        init_from_release(model, run.model.architecture, run.transfer.init_from, label_names)
    elif run.model.pretrained is not None:
        load_pretrained_base(model, run.model.pretrained)
    else:
        logger.warning(
            "strategy %s without pretrained weights (--no-pretrained): the base starts random",
            run.transfer.strategy,
        )
    return model


def train(
    run: RunConfig,
    output_dir: str | Path,
    resume: bool = False,
    push: PushTarget | None = None,
    end_training: bool = True,
) -> dict:
    """Train `run` into `output_dir`, then push the release to `push` if given; returns the final metrics.

    `end_training=False` leaves the process group up, for a caller that trains again in the same processes
    (tl_hub.experiments.compare); that caller ends it.
    """
    output_dir = Path(output_dir)
    if push is not None:
        check_can_push(push)  # before training, not after: fail in seconds, not hours
    accelerator = Accelerator(
        # --batch-size is the global batch, as in the study, however many processes share it.
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
    )
    check_processes(accelerator)
    n_proc = accelerator.num_processes
    if run.train.batch_size % n_proc:
        raise ConfigError(
            f"batch_size={run.train.batch_size} does not split over {n_proc} processes: "
            f"use a multiple of {n_proc}"
        )
    start_from = _check_run_dir(output_dir, run, resume)
    if n_proc > 1:
        logger.info(
            "%d processes (%s): global batch %d = %d x %d",
            n_proc,
            accelerator.distributed_type.value,
            run.train.batch_size,
            n_proc,
            run.train.batch_size // n_proc,
        )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RUN_CONFIG_NAME).write_text(json.dumps(run.to_dict(), indent=2) + "\n")
    set_seed(run.train.seed)

    with accelerator.main_process_first():
        data: PreparedData = prepare_data(run.data, run.preprocess, run.train.seed)
    counts = {"train": len(data.train), "validation": len(data.validation)}
    if data.test is not None:
        counts["test"] = len(data.test)
    logger.info(
        "data: %s, %s, %d classes",
        run.data.dataset,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
        len(data.label_names),
    )

    model = build_model(run, data.label_names)
    plan = TransferPlan(model, run.model.architecture, run.transfer, run.train.lr)
    plan.start_epoch(model, 1)
    plan.log_counts(1)
    optimizer = build_optimizer(plan.groups, run.train)

    splits = {"train": data.train, "validation": data.validation}
    if data.test is not None:
        splits["test"] = data.test
    if run.transfer.strategy == "feature-extract" and run.transfer.feature_cache:
        # The base is frozen: run it once per image (cached on disk) and train the head on its output.
        tensors = {}
        with accelerator.main_process_first():
            for name, split in splits.items():
                tensors[name] = cached_features(
                    model,
                    split.images,
                    split.labels,
                    run.preprocess,
                    accelerator.device,
                    views=run.transfer.cache_views if name == "train" else 0,
                    aug=run.aug,
                    seed=run.train.seed,
                    fast=run.transfer.fast_base,
                    desc=name,
                )
        if run.aug.enabled and not run.transfer.cache_views:
            logger.info(
                "feature cache: one clean view per image, no augmentation (--cache-views K adds K views)"
            )
        trainee: nn.Module = HeadOnly(model, run.model.architecture)
        train_prepare = eval_prepare = feature_inputs
    else:
        tensors = {name: (split.images, split.labels) for name, split in splits.items()}
        trainee = model
        train_prepare, eval_prepare = (
            image_inputs(run.preprocess, BatchAugment(run.aug)),
            image_inputs(run.preprocess),
        )
    train_loader = _loader(*tensors["train"], run.train.batch_size, shuffle=True)
    eval_loaders = {
        k: _loader(*v, EVAL_BATCH_SIZE, shuffle=False) for k, v in tensors.items() if k != "train"
    }
    scheduler = build_scheduler(optimizer, run.train, run.train.epochs * len(train_loader))
    if run.transfer.compile:
        trainee = torch.compile(trainee)
    trainee, optimizer, train_loader, scheduler = accelerator.prepare(
        trainee, optimizer, train_loader, scheduler
    )
    eval_loaders = {k: accelerator.prepare(v) for k, v in eval_loaders.items()}
    # DDP all-reduces the gradients of the parameters that required grad when prepare() wrapped the model.
    synced = {id(p) for p in model.parameters() if p.requires_grad}

    history: list[dict[str, float]] = []
    first_epoch = 1
    if start_from is not None:
        accelerator.load_state(str(start_from))
        history = json.loads((start_from / STATE_NAME).read_text())["history"]
        first_epoch = len(history) + 1
        logger.info("resumed from %s: continuing at epoch %d", start_from, first_epoch)

    epochs = run.train.epochs
    outputs: dict[str, tuple] = {}  # split -> (logits, labels) of the current weights
    for epoch in range(first_epoch, epochs + 1):
        start = time.perf_counter()
        # Every epoch's randomness (shuffle, augmentation, dropout) derives from (seed, epoch, process),
        # so a resumed run replays exactly what an uninterrupted one would have done.
        set_seed(run.train.seed * 1000 + epoch, device_specific=True)
        generator = torch.Generator().manual_seed(
            run.train.seed * 1000 + epoch * 10 + accelerator.process_index
        )
        train_loader.set_epoch(epoch)
        plan.start_epoch(model, epoch)
        if plan.unfreezes(epoch):
            plan.log_counts(epoch)  # finetune-top: the last conv block joins the head
        if n_proc > 1:
            _sync_gradients_of_late_joiners(plan.trainable(epoch), synced)
        train_stats = train_one_epoch(
            trainee,
            train_loader,
            optimizer,
            scheduler,
            accelerator,
            train_prepare,
            generator,
            desc=f"epoch {epoch}/{epochs}",
        )
        logits, labels = predict(trainee, eval_loaders["validation"], accelerator, eval_prepare, "validation")
        outputs["validation"] = logits, labels
        val_acc = float((logits.argmax(1) == labels).mean())
        seconds = time.perf_counter() - start
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_stats["loss"],
                "train_accuracy": train_stats["accuracy"],
                "val_loss": evaluate_loss(logits, labels),
                "val_accuracy": val_acc,
                "seconds": seconds,
            }
        )
        if accelerator.is_main_process:
            h = history[-1]
            logger.info(
                "epoch %d/%d: train loss %.4f acc %.4f | validation loss %.4f accuracy %.4f | %.1fs",
                epoch,
                epochs,
                h["train_loss"],
                h["train_accuracy"],
                h["val_loss"],
                val_acc,
                seconds,
            )
        _save_checkpoint(accelerator, output_dir, epoch, history)

    evaluations = {}
    for split, loader in eval_loaders.items():
        if split not in outputs:  # the last epoch scored validation already
            outputs[split] = predict(trainee, loader, accelerator, eval_prepare, split)
        logits, labels = outputs[split]
        evaluations[split] = classification_metrics(logits, labels, data.label_names)
        evaluations[split]["loss"] = evaluate_loss(logits, labels)
    _check_replicas_agree(accelerator, model)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for split, m in evaluations.items():
            logger.info(
                "%s: accuracy %.4f, macro-F1 %.4f, top-5 accuracy %.4f (%d images)",
                split,
                m["accuracy"],
                m["macro_f1"],
                m["top5_accuracy"],
                m["num_samples"],
            )
        write_release(
            output_dir / "model",
            model,  # the whole network: base and the trained head
            run,
            data.label_names,
            history,
            evaluations,
            counts,
            data.validation_from,
            data.skipped_images,
            data.fingerprints(),
        )
    accelerator.wait_for_everyone()
    if end_training:
        accelerator.end_training()
    if push is not None and accelerator.is_main_process:
        push_to_hub(output_dir / "model", push)  # after the last barrier: a failure strands no process
    return evaluations


def _sync_gradients_of_late_joiners(params: list[nn.Parameter], synced: set[int]) -> None:
    """Average across processes the gradients of parameters unfrozen after DDP wrapped the model.

    DDP only synchronizes what required grad at wrap time; finetune-top's last conv block joins later, so
    without this each process would train its own copy of it on its own shard of the data.
    """
    for p in params:
        if id(p) not in synced:
            p.register_post_accumulate_grad_hook(_all_reduce_mean)
            synced.add(id(p))


def _all_reduce_mean(param: nn.Parameter) -> None:
    torch.distributed.all_reduce(param.grad)
    param.grad.div_(torch.distributed.get_world_size())


def _check_replicas_agree(accelerator: Accelerator, model: nn.Module) -> None:
    """Warn if the processes ended with different weights: the release holds the main process's."""
    if accelerator.num_processes == 1:
        return
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(accelerator.device)
    everyone = accelerator.gather(sums[None])  # (processes, parameters)
    differ = (everyone != everyone[:1]).any(dim=0).sum()
    if differ and accelerator.is_main_process:
        logger.warning(
            "the processes' weights differ in %d of %d tensors: the release holds the main process's",
            int(differ),
            len(sums),
        )


def _save_checkpoint(accelerator: Accelerator, output_dir: Path, epoch: int, history: list[dict]) -> None:
    """Accelerate state for epoch `epoch`; older checkpoints beyond the newest few are removed."""
    path = output_dir / "checkpoints" / f"epoch_{epoch:03d}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / STATE_NAME).write_text(json.dumps({"epoch": epoch, "history": history}, indent=2) + "\n")
        for old in _checkpoints(output_dir)[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def apply_overrides(run: RunConfig, **overrides: object) -> RunConfig:
    """`run` with the given section fields replaced (None values are ignored): e.g. train__lr=0.01."""
    sections: dict[str, dict[str, object]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, name = key.split("__")
        sections.setdefault(section, {})[name] = value
    return dataclasses.replace(
        run, **{s: dataclasses.replace(getattr(run, s), **fields) for s, fields in sections.items()}
    )
