"""The Accelerate loop's parts: the per-epoch seeds and one epoch of training.

Every script makes one Accelerator per process (`tl_hub.accelerator.make_accelerator`) and hands it down;
training, evaluation and experiments all score a model with `tl_hub.scoring.score`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from tl_hub.progress import Progress
from tl_hub.scoring import Prepare


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
