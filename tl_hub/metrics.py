"""Classification metrics computed offline from logits and labels, through tl_hub's own `evaluate` module
(tl_hub/classification_metric.py: no Hub-hosted metric scripts)."""

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
def _metric() -> Any:
    evaluate = _evaluate_library()
    # In memory: no Arrow cache files beside the runs, and nothing shared between processes.
    return evaluate.load(METRIC_PATH, keep_in_memory=True)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, top-5 accuracy, per-class accuracy and the confusion matrix.

    Macro-F1 averages over the classes present in `labels` or predicted (scikit-learn's default); a class
    absent from both is left out rather than counted as zero. Per-class accuracy (recall) lists the classes
    present in `labels`. With no samples every score is 0.0.
    """
    num_classes = len(label_names)
    logits = np.asarray(logits, dtype=np.float32).reshape(len(labels), num_classes)
    m = _metric().compute(predictions=logits, references=np.asarray(labels), num_classes=num_classes)
    return {
        "accuracy": float(m["accuracy"]),
        "macro_f1": float(m["macro_f1"]),
        "top5_accuracy": float(m["top5_accuracy"]),
        "num_samples": int(m["num_samples"]),
        "per_class_accuracy": {
            name: float(r)
            for name, r in zip(label_names, m["per_class_recall"], strict=True)
            if r is not None
        },
        "confusion_matrix": [[int(c) for c in row] for row in m["confusion_matrix"]],
    }


def summary(metrics: dict) -> dict[str, float]:
    """The scalar metrics only (what a log line or a model-index shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}
