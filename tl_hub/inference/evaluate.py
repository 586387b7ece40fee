"""Evaluate a release directory (or Hub repo) on a split of any dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from tl_hub.config import PreprocessConfig
from tl_hub.data.loading import decode_split, label_names_of, open_dataset, resolve_columns
from tl_hub.errors import DatasetError
from tl_hub.metrics import classification_metrics
from tl_hub.release.io import from_pretrained
from tl_hub.training.engine import check_processes, evaluate_loss, image_inputs, predict

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
    split: str = "test",
    image_column: str | None = None,
    label_column: str | None = None,
    batch_size: int = 512,
    output: str | Path | None = None,
) -> dict:
    """Metrics of the model in `model_dir` on `dataset[split]`, computed on every process, gathered."""
    accelerator = Accelerator()
    check_processes(accelerator)
    model, config = from_pretrained(model_dir)
    preprocess = PreprocessConfig.from_dict(config["preprocess"])
    model_labels: list[str] = config["label_names"]
    with accelerator.main_process_first():
        dsd = open_dataset(dataset)
    if split not in dsd:
        raise DatasetError(f"split {split!r} not in dataset {dataset!r}: choose one of {', '.join(dsd)}")
    ds = dsd[split]
    image_col, label_col = resolve_columns(ds.features, image_column, label_column)
    data, _ = decode_split(ds, image_col, label_col, preprocess, split)
    data_labels = label_names_of(ds.features[label_col], data.labels.numpy())
    data.labels = torch.tensor(match_labels(data_labels, model_labels))[data.labels]
    loader = DataLoader(TensorDataset(data.images, data.labels), batch_size=batch_size)
    model, loader = accelerator.prepare(model, loader)
    logits, labels = predict(model, loader, accelerator, image_inputs(preprocess), split)
    metrics = classification_metrics(logits, labels, model_labels)
    metrics["loss"] = evaluate_loss(logits, labels)
    if accelerator.is_main_process:
        print(
            f"{dataset} [{split}]: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"top-5 accuracy {metrics['top5_accuracy']:.4f}, loss {metrics['loss']:.4f} "
            f"({metrics['num_samples']} images)"
        )
        if output is not None:
            Path(output).write_text(json.dumps(metrics, indent=2) + "\n")
            logger.info("metrics written to %s", output)
    accelerator.end_training()
    return metrics
