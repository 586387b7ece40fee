"""Writing the release directory OUTPUT_DIR/model/: all a user needs to use or publish a trained model."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from torch import nn

from tl_hub.metrics import summary
from tl_hub.release.card import render_model_card
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.facts import Facts, load_facts, result_of, save_facts
from tl_hub.release.files import (
    CARD_NAME,
    CONFUSION_NAME,
    CURVES_NAME,
    EXAMPLE_SIDE,
    EXAMPLES_DIR,
    MAX_EXAMPLE_BYTES,
    MAX_EXAMPLES,
    METRICS_NAME,
    save_pretrained,
    write_json,
)
from tl_hub.release.plots import plot_confusion_matrix, plot_training_curves

if TYPE_CHECKING:
    from tl_hub.data.loading import SplitData

logger = logging.getLogger(__name__)


def local_name(directory: Path) -> str:
    """The release as its card's snippets load it: relative to where the command ran, or `OUTPUT_DIR/model`
    when it lies elsewhere (a card never holds a path of this machine)."""
    try:
        return Path(directory).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "OUTPUT_DIR/model"


def write_release(
    directory: str | Path,
    model: nn.Module,
    config: ReleaseConfig,
    metrics: dict[str, Any],
    facts: Facts,
    examples: SplitData | None = None,
) -> Path:
    """Write weights, config.json, metrics.json, facts.json, plots and the model card (last) to `directory`.

    `metrics` is metrics.json: the evaluations per split ("validation", "test"), "history" (one dict per
    epoch) and "data" (counts, how validation was made, skipped images, split fingerprints). `facts` is what
    the card and every other reader say of the run (tl_hub.release.facts). `examples` (the validation
    split) gives the release a few example images (`write_examples`), which the Space offers.
    """
    directory = save_pretrained(model, directory, config)
    write_json(directory / METRICS_NAME, metrics)
    save_facts(directory, facts)
    old = directory / EXAMPLES_DIR  # an earlier run's examples: never mixed with this run's
    if old.is_symlink():
        old.unlink()
    shutil.rmtree(old, ignore_errors=True)
    if examples is not None:
        write_examples(directory, examples, list(config.label_names))
    plot_training_curves(metrics["history"], directory / CURVES_NAME)
    shown = "test" if "test" in metrics else "validation"
    plot_confusion_matrix(
        np.array(metrics[shown]["confusion_matrix"]),
        list(config.label_names),
        directory / CONFUSION_NAME,
        title=f"{facts.recipe.name}: {shown} split, accuracy {metrics[shown]['accuracy']:.4f}",
    )
    render_model_card(directory, local_name=local_name(directory)).save(directory / CARD_NAME)
    scalars = ", ".join(f"{k}={v:.4f}" for k, v in summary(metrics[shown]).items() if k != "num_samples")
    logger.info("release written to %s (%s: %s)", directory, shown, scalars)
    return directory


def example_indices(labels: np.ndarray, num_classes: int, n: int = MAX_EXAMPLES) -> list[int]:
    """Which images of a split make the examples: `n` at most, spread over the classes present (evenly
    spaced class ids when there are more classes than `n`), as evenly per class as `n` allows, each class's
    first images in the split's order."""
    present = [c for c in range(num_classes) if (labels == c).any()]
    if not present:
        return []
    if len(present) > n:
        present = [present[i] for i in np.linspace(0, len(present) - 1, n).round().astype(int)]
    chosen: list[int] = []
    for c in present:
        chosen += np.flatnonzero(labels == c)[: n // len(present)].tolist()
    return chosen


def write_examples(directory: Path, split: SplitData, label_names: list[str]) -> list[Path]:
    """Save `example_indices` of `split` (uint8 images as preprocessed for training: the model's colour mode
    and equalization, at its input size or the disk cache's storage size) as `EXAMPLES_DIR/NN-label.jpg` in
    the release, each within `EXAMPLE_SIDE` pixels and `MAX_EXAMPLE_BYTES` (one that
    cannot be is left out)."""
    indices = example_indices(split.labels.numpy(), len(label_names))
    if not indices:
        return []
    target = Path(directory) / EXAMPLES_DIR
    target.mkdir(parents=True, exist_ok=True)
    images, labels = split.images[indices], split.labels[indices]  # (n, C, S, S) uint8, (n,)
    paths = []
    for i, (pixels, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        array = pixels.permute(1, 2, 0).numpy()  # (S, S, C)
        image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE))
        slug = re.sub(r"[^a-z0-9]+", "_", label_names[label].lower()).strip("_")
        path = target / f"{i:02d}-{slug[:40] or label}.jpg"
        for quality in (85, 60, 35):  # a noisy image compresses badly: coarser until it fits
            image.save(path, quality=quality)
            if path.stat().st_size <= MAX_EXAMPLE_BYTES:
                paths.append(path)
                break
        else:
            path.unlink()
    logger.info("%d example images from the validation split in %s", len(paths), target)
    return paths


def record_result(directory: str | Path, metrics: dict[str, Any], split: str, dataset: str) -> Path:
    """Add `metrics` (scripts/evaluate.py's, on `dataset[split]`) to the local release's facts.json and
    render its card again; a later result for the same split and dataset replaces the earlier one.
    `scripts/push.py` then uploads both."""
    from tl_hub.config import DataConfig
    from tl_hub.data.naming import dataset_name, is_hub_dataset_id
    from tl_hub.errors import TLHubError
    from tl_hub.release.files import release_dir

    local = Path(directory).expanduser()
    if not local.is_dir():
        raise TLHubError(
            f"--update-card {str(directory)!r}: not a local release directory; update a local copy "
            "(OUTPUT_DIR/model), then upload it with scripts/push.py"
        )
    local = release_dir(local)
    facts = load_facts(local)
    if facts is None:
        raise TLHubError(
            f"{str(local)!r} has no facts.json (an older release): its card cannot record results"
        )
    name = dataset_name(DataConfig(dataset=dataset))
    hub_id = dataset if is_hub_dataset_id(dataset) else None
    save_facts(local, facts.with_result(result_of(metrics, split, name, hub_id, "scripts/evaluate.py")))
    render_model_card(local, local_name=local_name(local)).save(local / CARD_NAME)
    logger.info("%s: %s split of %s recorded in facts.json and the model card", local, split, name)
    return local
