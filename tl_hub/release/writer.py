"""The release directory OUTPUT_DIR/model/: everything a user needs to use or publish a trained model."""

from __future__ import annotations

import dataclasses
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import nn

from tl_hub import __version__
from tl_hub.config import PreprocessConfig, RunConfig
from tl_hub.data.loading import is_hub_dataset_id
from tl_hub.metrics import summary
from tl_hub.models import ARCHITECTURE_ARGS, TIMM_ARCHITECTURES
from tl_hub.recipes import get_recipe
from tl_hub.release.io import CONFIG_NAME, METRICS_NAME, WEIGHTS_NAME, save_pretrained
from tl_hub.release.plots import plot_confusion_matrix, plot_training_curves

logger = logging.getLogger(__name__)

CURVES_NAME = "training_curves.png"
CONFUSION_NAME = "confusion_matrix.png"
CARD_NAME = "README.md"
RELEASE_FILES = (WEIGHTS_NAME, CONFIG_NAME, METRICS_NAME, CURVES_NAME, CONFUSION_NAME, CARD_NAME)


def release_config(run: RunConfig, label_names: list[str]) -> dict[str, Any]:
    """config.json: what it takes to rebuild the model and feed it, plus how it was trained."""
    arch = run.model.architecture
    config = {
        "architecture": arch,
        "num_classes": len(label_names),
        "label_names": label_names,
        "model_args": {"drop_rate": run.model.drop_rate, **ARCHITECTURE_ARGS.get(arch, {})},
        "preprocess": dataclasses.asdict(run.preprocess),
        "recipe": run.recipe,
        "training": {  # with recipe and preprocess: the whole RunConfig
            "model": dataclasses.asdict(run.model),
            "data": dataclasses.asdict(run.data),
            "train": dataclasses.asdict(run.train),
            "aug": dataclasses.asdict(run.aug),
            "transfer": dataclasses.asdict(run.transfer),
        },
        "tl_hub_version": __version__,
    }
    if arch in TIMM_ARCHITECTURES:
        config["pretrained_cfg"] = timm_pretrained_cfg(run.preprocess, len(label_names))
    return config


def timm_pretrained_cfg(p: PreprocessConfig, num_classes: int) -> dict[str, Any]:
    """The same preprocessing in timm's vocabulary, for `timm.create_model("hf-hub:...")` users.

    timm has no grayscale or equalization step: those are tl_hub-only and stay in `preprocess`.
    """
    return {
        "input_size": [p.channels, p.input_size, p.input_size],
        "interpolation": p.interpolation,
        "mean": list(p.mean),
        "std": list(p.std),
        "crop_pct": 1.0 if p.crop_pct is None else p.crop_pct,
        "crop_mode": "squash" if p.crop_pct is None else "center",
        "num_classes": num_classes,
    }


def run_from_release_config(config: dict[str, Any]) -> RunConfig:
    """The RunConfig that trained a release, rebuilt from its config.json."""
    return RunConfig.from_dict(
        {"recipe": config["recipe"], "preprocess": config["preprocess"], **config["training"]}
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _describe_preprocess(run: RunConfig) -> str:
    p = run.preprocess
    steps = [f"resize to {p.input_size}x{p.input_size} ({p.interpolation})"]
    if p.crop_pct is not None:
        steps[0] = f"resize the shorter side to {p.input_size / p.crop_pct:.0f}, center-crop {p.input_size}"
    if p.grayscale:
        steps.append("grayscale")
    if p.equalize == "global":
        steps.append("histogram equalization")
    elif p.equalize == "clahe":
        steps.append(
            f"contrast-limited adaptive histogram equalization (CLAHE, clip limit {p.clahe_clip_limit:g}, "
            f"{p.clahe_grid}x{p.clahe_grid} tiles)"
        )
    steps.append(f"normalize with mean {list(p.mean)} and std {list(p.std)}")
    return ", ".join(steps)


def _describe_aug(run: RunConfig) -> str:
    a = run.aug
    parts = []
    if a.rotation:
        parts.append(f"random rotation within +-{a.rotation:g} degrees")
    if a.scale != (1.0, 1.0):
        parts.append(f"zoom {a.scale[0]:g}-{a.scale[1]:g}")
    if a.translate:
        parts.append(f"shift up to {a.translate:.0%}")
    if a.blur_prob:
        parts.append(f"Gaussian blur (p={a.blur_prob:g}, sigma {a.blur_sigma[0]:g}-{a.blur_sigma[1]:g} px)")
    parts.append("horizontal flip" if a.hflip else "no horizontal flip")
    described = ", ".join(parts)
    t = run.transfer
    if t.strategy == "feature-extract" and t.feature_cache:  # the head saw cached features, not live images
        if not t.cache_views:
            return f"none: the head trained on one cached, plain view per image (configured: {described})"
        return f"{described}; {t.cache_views} augmented views per image, computed once and cached"
    return described


def render_model_card(directory: str | Path, repo_id: str | None = None) -> ModelCard:
    """The Hub model card of the release in `directory`, from its config.json and metrics.json.

    `repo_id` names the Hub repo in the metadata and the usage snippet; without it, the snippet loads the
    local directory.
    """
    directory = Path(directory)
    config = json.loads((directory / CONFIG_NAME).read_text())
    metrics = json.loads((directory / METRICS_NAME).read_text())
    run = run_from_release_config(config)
    recipe = get_recipe(run.recipe)
    evaluations = {split: metrics[split] for split in ("validation", "test") if split in metrics}
    history, data = metrics["history"], metrics["data"]
    dataset = run.data.dataset
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=metric,
            metric_name=metric.replace("_", " "),
            metric_value=round(evaluations[split][metric], 4),
        )
        for split in evaluations
        for metric in ("accuracy", "macro_f1")
    ]
    card_data = ModelCardData(
        license=recipe.license,
        library_name="tl_hub",
        tags=["image-classification", "tl_hub", *recipe.tags],
        datasets=[dataset] if is_hub_dataset_id(dataset) else None,
        pipeline_tag="image-classification",
        base_model=recipe.base_model,
        model_name=repo_id or recipe.name,
        eval_results=eval_results,
    )
    t = run.train
    hyperparameters = [
        ("architecture", run.model.architecture),
        ("strategy", run.transfer.strategy),
        ("initial weights", run.transfer.init_from or run.model.pretrained or "random"),
        ("optimizer", t.optimizer + (f" (momentum {t.momentum:g})" if t.optimizer == "sgd" else "")),
        ("learning rate", f"{t.lr:g}"),
        ("scheduler", t.scheduler),
        ("weight decay", f"{t.weight_decay:g}"),
        ("batch size", t.batch_size),
        ("epochs", t.epochs),
        ("dropout", f"{run.model.drop_rate:g}"),
        ("seed", t.seed),
    ]
    study = recipe.study_results
    results = []
    for split, key in (("validation", "validation_accuracy"), ("test", "test_accuracy")):
        if split in evaluations:
            results.append(
                {
                    "metric": "accuracy",
                    "split": split,
                    "ours": _fmt(evaluations[split]["accuracy"]),
                    "study": _fmt(study.get(key)),
                }
            )
            for metric in ("macro_f1", "top5_accuracy"):
                results.append(
                    {
                        "metric": metric.replace("_", " "),
                        "split": split,
                        "ours": _fmt(evaluations[split][metric]),
                        "study": "-",
                    }
                )
    template = resources.files("tl_hub.model_cards").joinpath("model_card.md").read_text()
    return ModelCard.from_template(
        card_data,
        template_str=template,
        model_name=(repo_id or recipe.name).split("/")[-1],
        description=recipe.description,
        recipe=recipe.name,
        study_summary=recipe.study_summary,
        intended_use=recipe.intended_use,
        dataset=dataset,
        num_train=data["counts"].get("train", 0),
        num_validation=data["counts"].get("validation", 0),
        num_test=data["counts"].get("test", 0),
        validation_from=data["validation_from"],
        num_classes=config["num_classes"],
        skipped_images=data["skipped_images"],
        hyperparameters=hyperparameters,
        preprocessing=_describe_preprocess(run),
        augmentation=_describe_aug(run),
        results=results,
        per_epoch=", ".join(f"{h['val_accuracy']:.3f}" for h in history),
        load_from=repo_id or str(directory),
        citations=recipe.citations,
    )


def write_release(
    directory: str | Path,
    model: nn.Module,
    run: RunConfig,
    label_names: list[str],
    history: list[dict[str, float]],
    evaluations: dict[str, dict],
    counts: dict[str, int],
    validation_from: str,
    skipped_images: int = 0,
    fingerprints: dict[str, str] | None = None,
) -> Path:
    """Write weights, config.json, metrics.json, plots and the model card to `directory`.

    `fingerprints` (split -> SplitData.fingerprint) go into metrics.json: they show which runs saw the same
    images.
    """
    directory = Path(directory)
    save_pretrained(model, directory, release_config(run, label_names))
    metrics = {
        "recipe": run.recipe,
        "dataset": run.data.dataset,
        **evaluations,
        "history": history,
        "data": {
            "counts": counts,
            "validation_from": validation_from,
            "skipped_images": skipped_images,
            "fingerprints": fingerprints or {},
        },
    }
    (directory / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    plot_training_curves(history, directory / CURVES_NAME)
    shown = "test" if "test" in evaluations else "validation"
    plot_confusion_matrix(
        np.array(evaluations[shown]["confusion_matrix"]),
        label_names,
        directory / CONFUSION_NAME,
        title=f"{run.recipe}: {shown} split, accuracy {evaluations[shown]['accuracy']:.4f}",
    )
    render_model_card(directory).save(directory / CARD_NAME)
    scalars = ", ".join(f"{k}={v:.4f}" for k, v in summary(evaluations[shown]).items() if k != "num_samples")
    logger.info("release written to %s (%s: %s)", directory, shown, scalars)
    return directory
