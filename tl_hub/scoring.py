"""Scoring a model on a split: batching for evaluation, the model's inputs, logits to metrics.

Below training and inference alike: the trainer's validation, `scripts/evaluate.py`, compare and the
benchmarks all batch with `eval_loader`, prepare batches with `image_inputs` (or `feature_inputs`) and
score with `score`, so their numbers are computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from tl_hub.config import PreprocessConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.data.loading import SplitData
from tl_hub.data.preprocess import center_view, normalize
from tl_hub.data.store import ImageStore
from tl_hub.metrics import classification_metrics
from tl_hub.progress import Progress

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
