"""The Hub model card of a release: metadata (model-index) and text, from its config.json and metrics.json."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from tl_hub.config import RunConfig
from tl_hub.data.naming import dataset_name, is_hub_dataset_id
from tl_hub.errors import TLHubError
from tl_hub.recipes import get_recipe
from tl_hub.release.files import METRICS_NAME
from tl_hub.release.load import load_config


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
    config = load_config(directory)
    metrics = json.loads((directory / METRICS_NAME).read_text())
    if config.training is None:
        raise TLHubError(
            f"{str(directory)!r} holds no training record in config.json: no model card to write"
        )
    run = config.training
    recipe = get_recipe(run.recipe)
    evaluations = {split: metrics[split] for split in ("validation", "test") if split in metrics}
    data = metrics["data"]
    template = resources.files("tl_hub.model_cards").joinpath("model_card.md").read_text()
    return ModelCard.from_template(
        _card_data(run, evaluations, repo_id),
        template_str=template,
        model_name=(repo_id or recipe.name).split("/")[-1],
        description=recipe.description,
        recipe=recipe.name,
        study_summary=recipe.study_summary,
        intended_use=recipe.intended_use,
        dataset=dataset_name(run.data),
        num_train=data["counts"].get("train", 0),
        num_validation=data["counts"].get("validation", 0),
        num_test=data["counts"].get("test", 0),
        validation_from=data["validation_from"],
        num_classes=config.num_classes,
        skipped_images=data["skipped_images"],
        hyperparameters=_hyperparameters(run),
        preprocessing=_describe_preprocess(run),
        augmentation=_describe_aug(run),
        results=_results(evaluations, recipe.study_results),
        per_epoch=", ".join(f"{h['val_accuracy']:.3f}" for h in metrics["history"]),
        load_from=repo_id or str(directory),
        citations=recipe.citations,
    )


def _card_data(run: RunConfig, evaluations: dict[str, dict], repo_id: str | None) -> ModelCardData:
    """The card's metadata: what the Hub indexes, with the model-index of accuracy and macro-F1."""
    recipe = get_recipe(run.recipe)
    dataset = dataset_name(run.data)
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
    return ModelCardData(
        license=recipe.license,
        library_name="tl_hub",
        tags=["image-classification", "tl_hub", *recipe.tags],
        datasets=[run.data.dataset] if is_hub_dataset_id(run.data.dataset) else None,
        pipeline_tag="image-classification",
        base_model=_base_model(run),
        model_name=repo_id or recipe.name,
        eval_results=eval_results,
    )


def _base_model(run: RunConfig) -> str | None:
    """The Hub model the weights started from, for the card's metadata; None from random weights or a local
    directory."""
    pretrained = run.model.pretrained
    if run.transfer.strategy == "scratch" or pretrained is None or run.transfer.init_from is not None:
        return None
    recipe = get_recipe(run.recipe)
    if pretrained == recipe.config.model.pretrained and recipe.base_model:
        return recipe.base_model
    if pretrained.startswith("hf-hub:"):
        return pretrained.removeprefix("hf-hub:")
    if (
        ":" in pretrained
        or "/" in pretrained
        or Path(pretrained).suffix in (".safetensors", ".pth", ".pt", ".bin")
    ):
        return None
    import timm

    cfg = timm.models.get_pretrained_cfg(pretrained)
    return cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None


def _hyperparameters(run: RunConfig) -> list[tuple[str, object]]:
    t = run.train
    return [
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


def _results(evaluations: dict[str, dict], study: dict[str, float]) -> list[dict[str, str]]:
    """Rows of the results table: ours beside the study's, where the study published that number."""
    rows = []
    for split in ("validation", "test"):
        if split not in evaluations:
            continue
        for metric in ("accuracy", "macro_f1", "top5_accuracy"):
            theirs = study.get(f"{split}_accuracy") if metric == "accuracy" else None
            rows.append(
                {
                    "metric": metric.replace("_", " "),
                    "split": split,
                    "ours": _fmt(evaluations[split][metric]),
                    "study": _fmt(theirs) if metric == "accuracy" else "-",
                }
            )
    return rows
