"""Classification metrics computed offline from logits and labels (no Hub-hosted metric scripts)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score, top_k_accuracy_score

TOP_K = 5


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, top-5 accuracy, per-class accuracy and the confusion matrix.

    Macro-F1 averages over the classes present in `labels` or predicted (scikit-learn's default); a class
    absent from both is left out rather than counted as zero. Per-class accuracy (recall) lists the classes
    present in `labels`. With no samples every score is 0.0.
    """
    num_classes = len(label_names)
    classes = np.arange(num_classes)
    if len(labels) == 0:  # scikit-learn refuses empty inputs
        cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        accuracy = macro_f1 = top_k = 0.0
        recall = np.zeros(num_classes)
    else:
        preds = logits.argmax(axis=1)
        cm = confusion_matrix(labels, preds, labels=classes)  # cm[true, predicted]
        accuracy = accuracy_score(labels, preds)
        macro_f1 = f1_score(labels, preds, average="macro", zero_division=0)
        recall = recall_score(labels, preds, labels=classes, average=None, zero_division=0)
        # With at most 5 classes every label is in the top 5 (scikit-learn warns then, or fails on 2 classes).
        top_k = top_k_accuracy_score(labels, logits, k=TOP_K, labels=classes) if num_classes > TOP_K else 1.0
    support = cm.sum(axis=1)
    return {
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "top5_accuracy": float(top_k),
        "num_samples": len(labels),
        "per_class_accuracy": {
            name: float(recall[i]) for i, name in enumerate(label_names) if support[i] > 0
        },
        "confusion_matrix": cm.tolist(),
    }


def summary(metrics: dict) -> dict[str, float]:
    """The scalar metrics only (what a log line or a model-index shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}
