"""The Accelerate loop's parts: the process set-up and one epoch of training.

Every script makes one Accelerator per process (`make_accelerator`) and hands it down; training, evaluation
and experiments all score a model with `tl_hub.scoring.score`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator, DataLoaderConfiguration
from torch import nn
from torch.utils.data import DataLoader

from tl_hub.errors import ConfigError
from tl_hub.progress import Progress
from tl_hub.scoring import Prepare

logger = logging.getLogger(__name__)


def make_accelerator(report_to: tuple[str, ...] = (), project_dir: str | Path | None = None) -> Accelerator:
    """This process's Accelerator: made once by the script, passed to everything that trains or scores.

    Batch sizes are global, as in the study, however many processes share them (`split_batches`).
    `report_to` names the experiment trackers (checked by tl_hub.training.tracking.resolve_trackers), whose
    files go under `project_dir` (OUTPUT_DIR/logs).
    """
    accelerator = Accelerator(
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
        log_with=list(report_to) or None,
        project_dir=None if project_dir is None else str(project_dir),
    )
    check_processes(accelerator)
    check_threads(accelerator)
    return accelerator


def epoch_seeds(seed: int, epoch: int, process: int) -> tuple[int, int]:
    """This process's seeds for `epoch`: the global RNGs' (dropout; `set_seed`) and the CPU generator's
    that draws the batch augmentation. A function of (seed, epoch, process), so a resumed run replays the
    epochs an uninterrupted one runs.

    Process 0 keeps the seeds a single process has always had (seed * 1000 + epoch, and
    seed * 1000 + epoch * 10), so every single-process result stands. Every other process draws both from
    numpy's SeedSequence keyed by (epoch, process): the arithmetic it replaces (+ process) gave process 1
    the next epoch's global seed and process 10 the next epoch's generator.
    """
    if process == 0:
        return seed * 1000 + epoch, seed * 1000 + epoch * 10
    sequence = np.random.SeedSequence(seed, spawn_key=(epoch, process))
    global_seed, augment_seed = sequence.generate_state(2)  # uint32: within numpy's seed range
    return int(global_seed), int(augment_seed)


def check_threads(accelerator: Accelerator) -> None:
    """Say so when `accelerate launch` left a lone CPU process one thread of several cores.

    Unless told `--num_cpu_threads_per_process`, `accelerate launch` sets OMP_NUM_THREADS=1 for a single
    process (with or without `--cpu`): the quickstart then took 2 min 46 s instead of 1 min 46 s on 2 cores.
    """
    launched = "ACCELERATE_DYNAMO_BACKEND" in os.environ  # set by accelerate launch
    cores = len(os.sched_getaffinity(0))
    lone = accelerator.device.type == "cpu" and accelerator.num_processes == 1 and cores > 1
    if launched and lone and os.environ.get("OMP_NUM_THREADS") == "1" and torch.get_num_threads() == 1:
        logger.warning(
            "accelerate launch gave this CPU process 1 thread of %d cores (OMP_NUM_THREADS=1): pass "
            "--num_cpu_threads_per_process %d to accelerate launch, or run the script with python",
            cores,
            cores,
        )


def check_processes(accelerator: Accelerator) -> None:
    """Refuse processes that were launched together but that Accelerate runs each on its own.

    Without a GPU, `accelerate launch --num_processes N` (or torchrun) starts N processes that Accelerate
    leaves unconnected: each would train the whole run and write the same files.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        raise ConfigError(
            f"{launched} processes were launched but Accelerate runs each alone (no GPU): on the CPU, launch "
            f"with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes {launched} ...`, "
            "or launch one process"
        )


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator: Accelerator,
    prepare: Prepare,
    generator: torch.Generator,
    label_smoothing: float = 0.0,
    desc: str = "train",
    on_step: Callable[[torch.Tensor, int], None] | None = None,
) -> dict[str, float]:
    """Train for one pass over `loader`; returns mean loss and accuracy. The caller sets train/eval modes.

    `on_step(loss, images)` runs after every optimizer step with the batch's loss (on the device) and the
    images in the global batch (tl_hub.training.tracking.StepLog)."""
    total_loss = torch.zeros((), device=accelerator.device)
    correct = torch.zeros((), device=accelerator.device)
    seen = torch.zeros((), device=accelerator.device)
    bar = Progress(loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process)
    last = len(loader) - 1
    for i, (inputs, labels) in enumerate(bar):
        x = prepare(inputs, generator)
        with accelerator.accumulate(model):
            logits = model(x)
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        n = labels.shape[0]
        total_loss += loss.detach() * n
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += n
        if on_step is not None:
            on_step(loss, n * accelerator.num_processes)
        # the step's own count: a disabled bar (TQDM_DISABLE) does not count
        if accelerator.is_local_main_process and not bar.disable and (i % 10 == 0 or i == last):
            # .item() waits for the device: refresh the running figures every few steps only.
            bar.set_postfix(loss=f"{(total_loss / seen).item():.4f}", acc=f"{(correct / seen).item():.4f}")
    # Sum over processes: every process reports the same epoch figures.
    stats = accelerator.reduce(torch.stack([total_loss, correct, seen]), reduction="sum")
    return {"loss": (stats[0] / stats[2]).item(), "accuracy": (stats[1] / stats[2]).item()}
