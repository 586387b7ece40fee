"""Training curves and confusion-matrix images for the release directory."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def plot_training_curves(history: list[dict[str, float]], path: str | Path) -> None:
    """Loss and accuracy per epoch, train and validation."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("val", "-s")):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, label=split, markersize=3)
        ax_acc.plot(epochs, [h[f"{split}_accuracy"] for h in history], style, label=split, markersize=3)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion_matrix(cm: np.ndarray, label_names: list[str], path: str | Path, title: str) -> None:
    """Row-normalized confusion matrix (each true class sums to 1), classes labelled by index and name."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(label_names)
    side = min(14.0, 3 + 0.25 * n)
    fig, ax = plt.subplots(figsize=(side + 3, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = [f"{i} {name[:28]}" for i, name in enumerate(label_names)]
    fontsize = 6 if n > 20 else 9
    ax.set_xticks(range(n), [str(i) for i in range(n)], fontsize=fontsize)
    ax.set_yticks(range(n), ticks, fontsize=fontsize)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# One colour per arm of a comparison (tl_hub.experiments.compare), the same in every figure.
