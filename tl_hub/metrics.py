"""Classification metrics computed offline from logits and labels (no Hub-hosted metric scripts)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted], shape (num_classes, num_classes)."""
    flat = labels.astype(np.int64) * num_classes + preds.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, top-5 accuracy, per-class accuracy and the confusion matrix.

    Macro-F1 and per-class accuracy average over the classes present in `labels` or predicted, as
    scikit-learn does; a class absent from both is left out rather than counted as zero.
    """
    num_classes = len(label_names)
    preds = logits.argmax(axis=1)
    cm = confusion_matrix(labels, preds, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    seen = (support > 0) | (predicted > 0)
    k = min(5, num_classes)
    top_k = (
        np.argpartition(-logits, k - 1, axis=1)[:, :k]
        if num_classes > k
        else np.tile(np.arange(num_classes), (len(labels), 1))
    )
    return {
        "accuracy": float((preds == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "top5_accuracy": float((top_k == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0,
        "num_samples": len(labels),
        "per_class_accuracy": {
            name: float(recall[i]) for i, name in enumerate(label_names) if support[i] > 0
        },
        "confusion_matrix": cm.tolist(),
    }


def summary(metrics: dict) -> dict[str, float]:
    """The scalar metrics only (what a log line or a model-index shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}
