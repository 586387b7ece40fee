"""The comparison's plots: accuracy per epoch for every arm, and final accuracy against training-set size."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

ARM_COLORS = {
    "scratch": "tab:gray",
    "feature-extract": "tab:blue",
    "finetune-top": "tab:orange",
    "finetune-all": "tab:green",
    "source-only": "tab:red",
}


def _baseline(ax: plt.Axes, values: np.ndarray | None, arm: str, label: str) -> None:
    """A horizontal line at the mean of `values`, with a band from their min to max."""
    if values is None or not len(values):
        return
    color = ARM_COLORS.get(arm, "black")
    ax.axhline(values.mean(), color=color, linestyle="--", linewidth=1.2, label=label)
    if len(values) > 1:
        ax.axhspan(values.min(), values.max(), color=color, alpha=0.12, linewidth=0)


def plot_accuracy_per_epoch(
    panels: dict[str, dict[str, np.ndarray]],
    path: str | Path,
    title: str,
    baseline: np.ndarray | None = None,
    baseline_label: str = "source-only",
) -> None:
    """Validation accuracy per epoch: one panel per training-set size, one line per arm.

    `panels` maps a panel title to {arm: array (seeds, epochs)}; the line is the mean over seeds and the band
    spans the lowest to the highest seed. `baseline` (one value per seed) is drawn as a dashed level.
    """
    n = len(panels)
    cols = 2 if n == 4 else min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), sharey=True, squeeze=False)
    for ax, (panel, arms) in zip(axes.flat, panels.items(), strict=False):
        for arm, curves in arms.items():
            epochs = np.arange(1, curves.shape[1] + 1)
            color = ARM_COLORS.get(arm)
            ax.plot(epochs, curves.mean(axis=0), "-o", color=color, markersize=2.5, label=arm)
            if len(curves) > 1:
                ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.18)
        _baseline(ax, baseline, baseline_label, baseline_label)
        ax.set(title=panel, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy_vs_size(
    lines: dict[str, tuple[list[float], list[np.ndarray]]],
    path: str | Path,
    title: str,
    ylabel: str,
    ticks: dict[float, str],
    baseline: np.ndarray | None = None,
    baseline_label: str = "source-only",
) -> None:
    """Final accuracy against training images per class (log x): one line per arm, mean +- std over seeds.

    `lines` maps an arm to (x positions, one array of per-seed values per position); `ticks` labels x.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, (xs, values) in lines.items():
        means = [v.mean() for v in values]
        stds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(
            xs, means, yerr=stds, fmt="-o", color=ARM_COLORS.get(arm), capsize=3, markersize=4, label=arm
        )
    _baseline(ax, baseline, baseline_label, f"{baseline_label} (no target images)")
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.minorticks_off()
    ax.set(xlabel="training images per class", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
