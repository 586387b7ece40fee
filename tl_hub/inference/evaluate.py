"""Evaluate a release directory (or Hub repo) on a split of any dataset."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import torch
from accelerate import Accelerator

from tl_hub.data.labels import BY_POSITION, class_names, named_classes, read_labels, unlabelled
from tl_hub.data.loading import decode_split, resolve_columns, uses_disk
from tl_hub.data.sources import open_dataset
from tl_hub.data.views import with_views
from tl_hub.errors import DatasetError
from tl_hub.release.load import from_pretrained
from tl_hub.scoring import channels_last, eval_loader, image_inputs, score

logger = logging.getLogger(__name__)


def match_labels(
    data_labels: list[str],
    model_labels: list[str],
    label_map: dict[str, str] | str | None = None,
    fix: str | None = None,
) -> list[int]:
    """The model's output index for each of the dataset's classes.

    By name when the model knows every name; else as `label_map` says (dataset name -> model name, or
    "position": the dataset's classes taken as the model's, in order). Class names that are numbers ("7",
    GTSRB's "00007" folders) name the model's class of that number. Anything else is refused: matching by
    position is never assumed. `fix` says what to do about names that do not match (default: evaluate.py's
    --label-map).
    """
    index = {name: i for i, name in enumerate(model_labels)}
    if label_map == BY_POSITION:
        if len(data_labels) != len(model_labels):
            raise DatasetError(
                f"--label-map position: the dataset has {len(data_labels)} classes and the model "
                f"{len(model_labels)}; map them by name instead (--label-map DATA=MODEL,...)"
            )
        logger.warning(
            "--label-map position: the dataset's classes taken as the model's, in order (%s, ...)",
            _pairs(data_labels, model_labels),
        )
        return list(range(len(data_labels)))
    mapping = dict(label_map or {})
    for data, model in mapping.items():
        if data not in data_labels:
            raise DatasetError(
                f"--label-map maps {data!r}, which is not a class of the dataset (its classes: "
                f"{_names(data_labels)})"
            )
        if model not in index:
            raise DatasetError(
                f"--label-map maps {data!r} to {model!r}, which is not a class of the model (its classes: "
                f"{_names(model_labels)})"
            )
    resolved = [mapping.get(name, name) for name in data_labels]
    if not mapping and not all(name in index for name in data_labels) and _numbers(data_labels, model_labels):
        resolved = [model_labels[int(name)] for name in data_labels]
        logger.warning(
            "the dataset's class names are numbers: each taken as the model's class of that number (%s, ...)",
            _pairs(data_labels, resolved),
        )
    unknown = [name for name, target in zip(data_labels, resolved, strict=True) if target not in index]
    if unknown:
        at = [(name, data_labels.index(name)) for name in unknown[:2]]
        example = ",".join(f"{d}={model_labels[i % len(model_labels)]}" for d, i in at)
        fix = fix or (
            f"say which is which with --label-map DATA=MODEL,... (e.g. --label-map {shlex.quote(example)}), "
            "a JSON file, or --label-map position"
        )
        raise DatasetError(
            f"the dataset's classes {_names(unknown)} are not among the model's "
            f"({_names(model_labels)}): {fix}"
        )
    taken: dict[str, str] = {}
    for data, target in zip(data_labels, resolved, strict=True):
        if target in taken:
            raise DatasetError(
                f"the dataset's classes {taken[target]!r} and {data!r} both map to the model's {target!r}: "
                "each dataset class needs its own model class"
            )
        taken[target] = data
    return [index[target] for target in resolved]


def _numbers(data_labels: list[str], model_labels: list[str]) -> bool:
    """Whether every dataset class name is a distinct class number of the model ("3", "00003")."""
    if not all(name.isdigit() and name.isascii() for name in data_labels):
        return False
    numbers = [int(name) for name in data_labels]
    return len(set(numbers)) == len(numbers) and max(numbers) < len(model_labels)


def _names(names: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _pairs(data_labels: list[str], model_labels: list[str]) -> str:
    return ", ".join(f"{d!r} = {m!r}" for d, m in zip(data_labels[:2], model_labels[:2], strict=False))


def evaluate_release(
    model_dir: str | Path,
    dataset: str,
    accelerator: Accelerator,
    split: str = "test",
    image_column: str | None = None,
    label_column: str | None = None,
    batch_size: int | None = None,
    label_map: dict[str, str] | str | None = None,
) -> dict:
    """Metrics of the model in `model_dir` on `dataset[split]`, computed on every process, gathered.

    The dataset's labels are checked before any image is decoded, and its classes matched to the model's
    by name (or as `label_map` says: `match_labels`).

    Memory stays bounded: the batch follows the input size unless `batch_size` is given
    (`tl_hub.scoring.eval_batch_size`), and convolutions run channels-last, as the Space serves.
    """
    model, config = from_pretrained(model_dir)
    with accelerator.main_process_first():
        dsd = open_dataset(dataset, split=split)
    if split not in dsd:
        raise DatasetError(f"split {split!r} not in dataset {dataset!r}: choose one of {', '.join(dsd)}")
    ds = dsd[split]
    if len(ds) == 0:
        raise DatasetError(f"split {split!r} of dataset {dataset!r} has no rows: nothing to evaluate")
    image_col, label_col = resolve_columns(ds.features, image_column, label_column)
    if unlabelled(ds, label_col):
        raise DatasetError(
            f"split {split!r} of dataset {dataset!r} has no labels (all -1 or null): it cannot be scored"
        )
    feature = ds.features[label_col]
    data_labels = class_names(
        feature, read_labels(ds, label_col, split, named_classes(feature)), label_col, split
    )
    columns = torch.tensor(match_labels(data_labels, list(config.label_names), label_map))
    disk = uses_disk("auto", config.preprocess, len(ds))  # big or photo test sets: the disk image cache
    data, _ = decode_split(ds, image_col, label_col, config.preprocess, split, disk)
    labels = columns[data.labels]
    loader = eval_loader(data.images, labels, accelerator, batch_size)
    model = accelerator.prepare(model.to(memory_format=torch.channels_last))
    prepare = channels_last(image_inputs(config.preprocess))
    scored = with_views(model, config.preprocess)  # the release's test-time views, as it predicts
    metrics = score(scored, loader, accelerator, prepare, list(config.label_names), split)
    return metrics
