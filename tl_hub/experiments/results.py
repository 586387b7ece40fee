"""A comparison's vocabulary and its record (results.json): arms, sizes, and the helpers that group and
summarize results. Shared by the runner (tl_hub.experiments.compare) and the report (.report).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TRANSFER_ARMS = ("feature-extract", "finetune-top", "finetune-all")  # each is the strategy of that name
SOURCE_ONLY = "source-only"
ARMS = ("scratch", *TRANSFER_ARMS, SOURCE_ONLY)
ALL = "all"
RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"

Size = int | str  # training images per class, or "all"; the source-only arm has size 0


def size_label(size: Size) -> str:
    return "all" if size == ALL else f"{size}/class"


def size_order(size: Size) -> float:
    """Sort key: 0 (source-only), then images per class, then all."""
    return float("inf") if size == ALL else float(size)


def final_metric(results: dict[str, Any]) -> str:
    """The split the final accuracies come from: test when every result has one, else validation."""
    return "test" if results["results"] and all("test" in e for e in results["results"]) else "validation"


def group_results(results: dict[str, Any]) -> dict[tuple[str, Size], list[dict[str, Any]]]:
    """Results by (arm, size), each list in seed order."""
    groups: dict[tuple[str, Size], list[dict[str, Any]]] = {}
    for entry in sorted(results["results"], key=lambda e: e["seed"]):
        groups.setdefault((entry["arm"], entry["size"]), []).append(entry)
    return dict(sorted(groups.items(), key=lambda kv: (size_order(kv[0][1]), ARMS.index(kv[0][0]))))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
