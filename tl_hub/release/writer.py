"""Writing the release directory OUTPUT_DIR/model/: all a user needs to use or publish a trained model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tl_hub.metrics import summary
from tl_hub.release.card import render_model_card
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.facts import Facts, load_facts, result_of, save_facts
from tl_hub.release.files import (
    CARD_NAME,
    CONFUSION_NAME,
    CURVES_NAME,
    METRICS_NAME,
    save_pretrained,
    write_json,
)
from tl_hub.release.plots import plot_confusion_matrix, plot_training_curves

logger = logging.getLogger(__name__)


def local_name(directory: Path) -> str:
    """The release as its card's snippets load it: relative to where the command ran, or `OUTPUT_DIR/model`
    when it lies elsewhere (a card never holds a path of this machine)."""
    try:
        return Path(directory).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "OUTPUT_DIR/model"


def write_release(
    directory: str | Path, model: nn.Module, config: ReleaseConfig, metrics: dict[str, Any], facts: Facts
) -> Path:
    """Write weights, config.json, metrics.json, facts.json, plots and the model card (last) to `directory`.

    `metrics` is metrics.json: the evaluations per split ("validation", "test"), "history" (one dict per
    epoch) and "data" (counts, how validation was made, skipped images, split fingerprints). `facts` is what
    the card and every other reader say of the run (tl_hub.release.facts).
    """
    directory = save_pretrained(model, directory, config)
    write_json(directory / METRICS_NAME, metrics)
    save_facts(directory, facts)
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
