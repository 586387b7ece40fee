"""The Accelerate loop's parts: the process set-up, one epoch of training, and the one scoring function.

Every script makes one Accelerator per process (`make_accelerator`) and hands it down; training, evaluation
and experiments all score a model with `score`.
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

from tl_hub.config import PreprocessConfig
from tl_hub.data.loading import SplitData
from tl_hub.data.store import ImageStore
from tl_hub.data.transforms import BatchAugment, center_view, normalize
from tl_hub.errors import ConfigError
from tl_hub.metrics import classification_metrics
from tl_hub.progress import Progress

logger = logging.getLogger(__name__)

# A batch from a loader -> the model's input; the generator drives training-time augmentation.
Prepare = Callable[..., torch.Tensor]


EVAL_BATCH_SIZE = 512  # most images per evaluation step, across all processes
# Pixels per evaluation step: 64 images at 224x224. A VGG16 at 224x224 and batch 512 would peak near 20 GB;
# at 64 it stays under 3 GB and runs faster on a CPU. 32x32 images keep the full 512.
EVAL_PIXELS = 64 * 224 * 224


def eval_batch_size(inputs: torch.Tensor | ImageStore) -> int:
    """Images per evaluation step for `inputs`: bounded by pixels for images, 512 for features."""
    if inputs.ndim < 4:
        return EVAL_BATCH_SIZE
    return max(1, min(EVAL_BATCH_SIZE, EVAL_PIXELS // (inputs.shape[-2] * inputs.shape[-1])))


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


def eval_loader(
    inputs: torch.Tensor | ImageStore,
    labels: torch.Tensor,
    accelerator: Accelerator,
    batch_size: int | None = None,
) -> DataLoader:
    """An evaluation DataLoader prepared for `accelerator`, its batch (by default from the input size, see
    `eval_batch_size`) rounded to split over the processes. `inputs` may be the disk image cache."""
    n = accelerator.num_processes
    batch_size = batch_size or eval_batch_size(inputs)
    loader = SplitData(inputs, labels).loader(max(n, batch_size // n * n), shuffle=False)
    return accelerator.prepare(loader)


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


def image_inputs(preprocess: PreprocessConfig, augment: BatchAugment | None = None) -> Prepare:
    """Batch preparation for uint8 image batches: augmentation (training only) or the centre view of a
    stored margin, then normalization.

    Augmented batches are written into buffers reused from call to call (one per batch shape): each batch
    is valid until the next call, as a training step consumes it. Autograd would refuse a backward pass
    through a batch overwritten since."""
    size = preprocess.input_size
    buffers: dict[tuple[int, ...], torch.Tensor] = {}

    def prepare(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if augment is not None and generator is not None:
            # Random parameters come from a CPU generator, so a run is reproducible on any device.
            shape = (*images.shape[:2], size, size)
            out = augment(images, generator, size, preprocess.mean, preprocess.std, buffers.get(shape))
            buffers[shape] = out
            return out
        return normalize(center_view(images, size).float().div_(255.0), preprocess)

    return prepare


def channels_last(prepare: Prepare) -> Prepare:
    """`prepare` with its batches in channels-last memory order: the fast layout for convolutions on CPUs
    (oneDNN) and on GPUs with tensor cores; the values agree to float rounding."""

    def prepare_channels_last(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return prepare(images, generator).contiguous(memory_format=torch.channels_last)

    return prepare_channels_last


def feature_inputs(features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batch preparation for cached bottleneck features: float32, nothing else."""
    return features.float()


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


@torch.inference_mode()
def predict(
    model: nn.Module, loader: DataLoader, accelerator: Accelerator, prepare: Prepare, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels for every sample in `loader`, gathered from all processes (no duplicates)."""
    model.eval()
    all_logits, all_labels = [], []
    for inputs, labels in Progress(
        loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process
    ):
        logits = model(prepare(inputs))
        logits, labels = accelerator.gather_for_metrics((logits, labels))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def evaluate_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of gathered logits."""
    return float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item())


def score(
    model: nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    prepare: Prepare,
    label_names: list[str],
    desc: str,
    columns: list[int] | None = None,
) -> dict:
    """Metrics (accuracy, macro-F1, top-5, per class, confusion matrix, loss) of `model` on `loader`, gathered
    from every process, so they equal a single-process evaluation of the same weights.

    `columns` picks and orders the model's outputs to score, one per name in `label_names` (a model scored on
    another dataset's classes chooses among those only).
    """
    logits, labels = predict(model, loader, accelerator, prepare, desc)
    if columns is not None:
        logits = logits[:, columns]
    metrics = classification_metrics(logits, labels, label_names)
    metrics["loss"] = evaluate_loss(logits, labels)
    return metrics
