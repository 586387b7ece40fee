"""Classification metrics computed offline from logits and labels; also an `evaluate` module of the package
(tl_hub/classification_metric.py, `load_metric()`), as the Hub's metric scripts need the network."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

TOP_K = 5
METRIC_PATH = str(Path(__file__).with_name("classification_metric.py"))  # for evaluate.load(METRIC_PATH)


def _evaluate_library() -> Any:
    """The `evaluate` library, even where a module file called evaluate.py comes first on sys.path: running
    `python scripts/train.py` puts scripts/ there, and scripts/evaluate.py would shadow the library."""
    module = sys.modules.get("evaluate")
    if module is not None and hasattr(module, "load"):
        return module
    path = [p for p in sys.path if not (Path(p or ".") / "evaluate.py").is_file()]
    spec = importlib.machinery.PathFinder.find_spec("evaluate", path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("tl_hub scores through the evaluate library: pip install evaluate")
    module = importlib.util.module_from_spec(spec)
    sys.modules["evaluate"] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_metric() -> Any:
    """tl_hub's metrics as an `evaluate` module, loaded offline from this package (kept in memory: no Arrow
    cache files, nothing shared between processes). It computes with `scores` below, so its figures are
    tl_hub's own."""
    return _evaluate_library().load(METRIC_PATH, keep_in_memory=True)


def scores(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1, top-5 accuracy, per-class recall (None for a class with no sample) and the
    confusion matrix ([true][predicted]) of `logits` (one score per class per sample) against `labels`.

    scikit-learn's definitions (a test compares them): macro-F1 averages over the classes that occur as a
    label or a prediction; top-5 ranks tied scores as scikit-learn's stable sort does; with at most five
    classes top-5 is 1.0; with no samples every score is 0.0.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(len(labels), num_classes)
    n = len(labels)
    if n == 0:
        cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        accuracy = macro_f1 = top_k = 0.0
    else:
        preds = logits.argmax(axis=1)
        cm = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
        cm = cm.reshape(num_classes, num_classes)
        support, predicted, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
        present = (support + predicted) > 0  # a class absent from both is left out of the mean
        accuracy = float(hits.sum() / n)
        macro_f1 = float((2 * hits[present] / (support[present] + predicted[present])).mean())
        if num_classes > TOP_K:
            # as scikit-learn's top_k_accuracy_score: a stable sort, reversed (ties: the higher index first)
            ranked = np.argsort(logits, axis=1, kind="mergesort")[:, ::-1][:, :TOP_K]
            top_k = float((ranked == labels[:, None]).any(axis=1).mean())
        else:
            top_k = 1.0
    support = cm.sum(axis=1)
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "top5_accuracy": top_k,
        "num_samples": n,
        "per_class_recall": [
            float(cm[c, c] / support[c]) if support[c] else None for c in range(num_classes)
        ],
        "confusion_matrix": cm.tolist(),
    }


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """`scores` with the classes by name: accuracy, macro-F1, top-5 accuracy, per-class accuracy (recall,
    for the classes present in `labels`) and the confusion matrix. Training, scripts/evaluate.py and
    compare.py score with it; `load_metric()` gives the same figures through `evaluate`."""
    m = scores(logits, labels, len(label_names))
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "top5_accuracy": m["top5_accuracy"],
        "num_samples": m["num_samples"],
        "per_class_accuracy": {
            name: r for name, r in zip(label_names, m["per_class_recall"], strict=True) if r is not None
        },
        "confusion_matrix": m["confusion_matrix"],
    }


def summary(metrics: dict) -> dict[str, float]:
    """The scalar metrics only (what a log line or a model-index shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}
