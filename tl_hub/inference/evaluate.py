"""Evaluate a release directory (or Hub repo) on a split of any dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from tl_hub.data.loading import decode_split, label_names_of, open_dataset, resolve_columns, uses_disk
from tl_hub.errors import DatasetError
from tl_hub.release.load import from_pretrained
from tl_hub.training.engine import channels_last, eval_loader, image_inputs, score

logger = logging.getLogger(__name__)


def match_labels(data_labels: list[str], model_labels: list[str]) -> list[int]:
    """The model's output index for each of the dataset's classes.

    By name when the model knows every name. When no name is shared but the counts are equal (GTSRB's 43
    ClassIds named differently, e.g. "00000" folders or another dataset's wording), by position, with a
    warning that shows the pairing. Anything else is an error.
    """
    if all(name in model_labels for name in data_labels):
        return [model_labels.index(name) for name in data_labels]
    if len(data_labels) == len(model_labels) and not set(data_labels) & set(model_labels):
        logger.warning(
            "the dataset's %d label names differ from the model's: classes matched by position (%s, ...)",
            len(data_labels),
            ", ".join(f"{d!r} = {m!r}" for d, m in zip(data_labels[:2], model_labels[:2], strict=True)),
        )
        return list(range(len(data_labels)))
    unknown = sorted(set(data_labels) - set(model_labels))
    raise DatasetError(
        f"dataset labels unknown to the model: {', '.join(unknown[:5])}; "
        "evaluate on a dataset with the model's label set"
    )


def evaluate_release(
    model_dir: str | Path,
    dataset: str,
    accelerator: Accelerator,
    split: str = "test",
    image_column: str | None = None,
    label_column: str | None = None,
    batch_size: int | None = None,
) -> dict:
    """Metrics of the model in `model_dir` on `dataset[split]`, computed on every process, gathered.

    Memory stays bounded: the batch follows the input size unless `batch_size` is given
    (`tl_hub.training.engine.eval_batch_size`), and convolutions run channels-last, as the Space serves.
    """
    model, config = from_pretrained(model_dir)
    with accelerator.main_process_first():
        dsd = open_dataset(dataset)
    if split not in dsd:
        raise DatasetError(f"split {split!r} not in dataset {dataset!r}: choose one of {', '.join(dsd)}")
    ds = dsd[split]
    image_col, label_col = resolve_columns(ds.features, image_column, label_column)
    disk = uses_disk("auto", config.preprocess, len(ds))  # big or photo test sets: the disk image cache
    data, _ = decode_split(ds, image_col, label_col, config.preprocess, split, disk)
    data_labels = label_names_of(ds.features[label_col], data.labels.numpy())
    labels = torch.tensor(match_labels(data_labels, list(config.label_names)))[data.labels]
    loader = eval_loader(data.images, labels, accelerator, batch_size)
    model = accelerator.prepare(model.to(memory_format=torch.channels_last))
    prepare = channels_last(image_inputs(config.preprocess))
    metrics = score(model, loader, accelerator, prepare, list(config.label_names), split)
    return metrics
